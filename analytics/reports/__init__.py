"""The built-in cohort reports: the seed papers' analyses over the live registry data.

``runner.report_run`` builds a study's dataset for the person asking (only patients of the sites
where they may run reports), runs the study's report (``npsle``, ``lm``, ``icans``: plain classes
returning tables and SVG figures, never HTTP) and caches the result per registry state.
"""
