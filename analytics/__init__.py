"""Cohort datasets and the seed studies' statistics (pure functions over pandas DataFrames)."""
