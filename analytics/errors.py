"""The one exception the analytics layer raises for data it cannot analyse honestly."""


class AnalysisError(ValueError):
    """Input that a statistical method cannot analyse: the message names the column, group or term.

    Raised instead of returning NaN, so a notebook or view never shows a silently empty result.
    """
