"""A run's figures: stored with the run, drawn when first shown.

Drawing is most of a cold report's time (matplotlib lays out and draws each axes), and a reader
looks at the numbers first. ``report_run`` therefore runs a report inside ``plots.deferred()``
and stores each figure as a row: drawn SVG when this process had drawn the same figure lately,
otherwise the plot call that draws it. The first page, download or export that shows a figure
draws it and stores the SVG in its place; later ones read it.

The call is a pickle (the report's own numbers: frames, arrays, the plot's dataclasses), and
unpickling runs what a pickle names, so it is stored signed with the project's secret key
(``django.core.signing``, which also accepts ``SECRET_KEY_FALLBACKS``) under a salt naming the
plotting code's version: a call written by other code, under another key, or changed since, is
refused, never unpickled. Such a run is deleted, so the next view computes the report again. A
figure whose drawing fails (a bug) is logged and shown as not drawn, as a failed section was.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from pathlib import Path

from django.core import signing

from analytics import plots
from analytics.models import ReportFigure, ReportRun

logger = logging.getLogger(__name__)

#: The plotting code's version (a digest of ``analytics/plots.py``): calls are signed under it, so a
#: call stored before the plot functions or their dataclasses changed is refused and recomputed,
#: never called with arguments that may no longer fit.
PLOTS_VERSION = hashlib.sha256(Path(plots.__file__).read_bytes()).hexdigest()[:16]
SALT = f"analytics.report-figure-call.{PLOTS_VERSION}"


class FigureLost(Exception):
    """A stored figure this code cannot draw: its call was signed by other code or under another key,
    changed since, or cannot be unpickled. Its run is deleted: the next view computes it again."""


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


def _draw(figure: ReportFigure) -> str | None:
    """Draw a stored call and keep the SVG in its place (two requests drawing it at once store it
    once); None when drawing failed (logged). Raises ``FigureLost`` (and deletes the run) for a call
    this code cannot take back."""
    try:
        svg = plots.draw_call(_verified_call(figure.call))
    except (FigureLost, plots.StaleCall) as exc:
        logger.warning(
            "report figure %s of run %s cannot be drawn by this code (%s); the run is deleted",
            figure.key,
            figure.run_id,
            exc,
        )
        ReportRun.objects.filter(pk=figure.run_id).delete()
        raise FigureLost(str(exc)) from exc
    except Exception:
        logger.exception("report figure %s of run %s: drawing failed", figure.key, figure.run_id)
        return None
    ReportFigure.objects.filter(pk=figure.pk, svg="").update(svg=svg, call="")
    figure.svg, figure.call = svg, ""
    return svg


def figure_svg(run: ReportRun, key: str) -> str | None:
    """One figure of the run, drawn now if it was not yet; '' if drawing it failed (logged); None
    if the run has no such figure. Raises ``FigureLost`` for a call this code cannot take back."""
    figure = ReportFigure.objects.filter(run=run, key=key).first()
    if figure is None:
        return None
    if figure.svg:
        return figure.svg
    return _draw(figure) or ""


def run_figures(run: ReportRun, *, draw: bool) -> dict[str, str | None]:
    """Every figure of the run by key. Without ``draw``, one not drawn yet is ''. With ``draw``, those
    are drawn now, and one whose drawing failed is None; raises ``FigureLost`` as ``figure_svg``."""
    figures = ReportFigure.objects.filter(run=run)
    if not draw:
        return dict(figures.values_list("key", "svg"))
    return {figure.key: figure.svg or _draw(figure) for figure in figures}
