"""A run's figures: stored with the run, drawn when first shown.

Drawing is most of a cold report's time (matplotlib lays out and draws each axes), and a reader
looks at the numbers first. ``report_run`` therefore runs a report inside ``plots.deferred()``
and stores each figure as a row: drawn SVG when this process had drawn the same figure lately,
otherwise the plot call that draws it. The first page, download or export that shows a figure
draws it and stores the SVG in its place; later ones read it.

The call is a pickle (the report's own numbers: frames, arrays, the plot's dataclasses), and
unpickling runs what a pickle names, so it is stored signed with the project's secret key
(``django.core.signing``, which also accepts ``SECRET_KEY_FALLBACKS``): a call that was not
written by this code under this key is refused, never unpickled.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from django.core import signing

from analytics import plots
from analytics.models import ReportFigure, ReportRun

logger = logging.getLogger(__name__)

SALT = "analytics.report-figure-call"


class FigureLost(Exception):
    """A stored figure that can no longer be drawn: its call's signature does not match."""


class _Bytes:
    """``signing``'s serializer for a payload that is bytes already (the pickled call)."""

    def dumps(self, obj: bytes) -> bytes:
        return obj

    def loads(self, data: bytes) -> bytes:
        return data


def signed_call(call: bytes) -> str:
    return signing.dumps(call, salt=SALT, serializer=_Bytes, compress=True)


def _verified_call(signed: str) -> bytes:
    try:
        return signing.loads(signed, salt=SALT, serializer=_Bytes)
    except signing.BadSignature as exc:
        raise FigureLost("the stored call's signature does not match") from exc


def figure_rows(run: ReportRun, figures: Mapping[str, str | plots.Pending]) -> list[ReportFigure]:
    """The rows to store for a new run's figures: SVG, or the signed call of a figure not drawn."""
    return [
        ReportFigure(run=run, key=key, svg=figure)
        if isinstance(figure, str)
        else ReportFigure(run=run, key=key, call=signed_call(figure.call))
        for key, figure in figures.items()
    ]


def _draw(figure: ReportFigure) -> str:
    """Draw a stored call and keep the SVG in its place (two requests drawing it at once store it once)."""
    try:
        svg = plots.draw_call(_verified_call(figure.call))
    except FigureLost:
        logger.warning(
            "report figure %s of run %s: the stored call's signature does not match",
            figure.key,
            figure.run_id,
        )
        raise
    ReportFigure.objects.filter(pk=figure.pk, svg="").update(svg=svg, call="")
    figure.svg, figure.call = svg, ""
    return svg


def figure_svg(run: ReportRun, key: str) -> str | None:
    """One figure of the run, drawn now if it was not yet; None if the run has no such figure.

    Raises ``FigureLost`` for a call whose signature does not match.
    """
    figure = ReportFigure.objects.filter(run=run, key=key).first()
    if figure is None:
        return None
    return figure.svg or _draw(figure)


def run_figures(run: ReportRun, *, draw: bool) -> dict[str, str]:
    """Every figure of the run by key; with ``draw``, those not drawn yet are drawn now, else ''."""
    figures = ReportFigure.objects.filter(run=run)
    if not draw:
        return dict(figures.values_list("key", "svg"))
    return {figure.key: figure.svg or _draw(figure) for figure in figures}
