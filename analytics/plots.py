"""Report figures as deterministic, self-contained SVG (matplotlib on the Agg backend, no pyplot).

Every function takes numbers the report has already computed and returns SVG text ready to inline
in HTML: no XML prolog, element ids prefixed with the figure key (so many figures can share one
page), a fixed ``svg.hashsalt`` and no date metadata, so the same numbers always give the same
bytes. Text stays text (``svg.fonttype = none``): readable by screen readers and searchable.
Series carry ids (``gid``) such as ``<figure>-km-intrathecal-1`` (``<figure>-panel2-km-…`` in a
multi-panel figure), which the tests look for.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import io
import math
import pickle
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backends.backend_svg import FigureCanvasSVG  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.layout_engine import ConstrainedLayoutEngine  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator, PercentFormatter  # noqa: E402

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

#: Okabe–Ito: distinguishable with the common colour-vision deficiencies, and in greyscale print.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
INK, MUTED, GRID = "#1d2733", "#5b6b7c", "#e3e8ee"
RATIO_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100)

STYLE: dict[RcKeyType, Any] = {
    "svg.hashsalt": "intrathecal-registry-reports",
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.size": 9,
    "axes.edgecolor": MUTED,
    "axes.labelcolor": INK,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "legend.frameon": False,
}
#: No date, creator or licence block: the output depends on the numbers only.
NO_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}


def _ident(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-")


class _Drawn:
    """The SVG of figures drawn lately in this process, by a digest of what they were drawn from.

    A figure is a pure function of its inputs (same numbers, same bytes: see the module docstring),
    and a report computed again after a write that changed nothing a figure shows (a re-save, a
    record of another section, a site the figure does not count) would draw it again; the drawing
    is most of a report's time. The digest is SHA-256 of the pickled call (function, arguments),
    so equal digests mean equal inputs; an argument that cannot be pickled draws as before. The
    oldest entries go first beyond ``MAX_BYTES`` of SVG. ``fresh()`` turns the memo off (the
    benchmark's cold report, the tests of drawing itself).
    """

    MAX_BYTES = 32 * 2**20

    def __init__(self) -> None:
        self.svg: collections.OrderedDict[bytes, str] = collections.OrderedDict()
        self.size = 0
        self.off = 0
        self.lock = threading.Lock()  # a web process's threads share it

    @staticmethod
    def digest(call: bytes | None) -> bytes | None:
        return None if call is None else hashlib.sha256(call).digest()

    def get(self, digest: bytes) -> str | None:
        with self.lock:
            svg = self.svg.get(digest)
            if svg is not None:
                self.svg.move_to_end(digest)
            return svg

    def keep(self, digest: bytes, svg: str) -> None:
        if len(svg) > self.MAX_BYTES // 4:
            return
        with self.lock:
            if digest in self.svg:
                return
            self.svg[digest] = svg
            self.size += len(svg)
            while self.size > self.MAX_BYTES:
                self.size -= len(self.svg.popitem(last=False)[1])

    @contextlib.contextmanager
    def fresh(self) -> Iterator[None]:
        """Every figure drawn inside is drawn, not looked up (and not kept)."""
        self.off += 1
        try:
            yield
        finally:
            self.off -= 1


drawn = _Drawn()


def _call(function: Callable[..., str], args: tuple, kwargs: dict) -> bytes | None:
    """The call pickled (plot name, arguments), or None when an argument cannot be pickled."""
    try:
        return pickle.dumps((function.__name__, args, sorted(kwargs.items())), protocol=5)
    except (pickle.PicklingError, TypeError, AttributeError):
        return None


@dataclass(frozen=True)
class Pending:
    """A figure asked for inside ``deferred()`` and not drawn: the plot call, pickled, to draw later.

    ``draw_call`` draws it. The pickle is made here from the report's own numbers; whoever stores
    it must make sure what comes back is what was stored (``analytics.reports.figures`` signs it).
    """

    call: bytes


class _Deferring(threading.local):
    """Per thread, so a web process's other threads keep drawing while one runs a report."""

    depth = 0


_deferring = _Deferring()


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Inside, a figure not in the memo is not drawn: its function gives back a ``Pending`` call.

    Drawing is most of a cold report's time; a report run inside this stores its numbers at once
    and its figures are drawn when first shown (``analytics.reports.figures``). A figure whose
    arguments cannot be pickled is drawn as before.
    """
    _deferring.depth += 1
    try:
        yield
    finally:
        _deferring.depth -= 1


_P = ParamSpec("_P")


class StaleCall(Exception):
    """A pickled call this code cannot take back: made by other code (a plot or a dataclass since
    renamed or changed, another pandas), so its figure must be computed again."""


#: The plot functions by name, undecorated: what a ``Pending`` call may name.
PLOTS: dict[str, Callable[..., str]] = {}


def draw_call(call: bytes) -> str:
    """Draw a ``Pending`` call (or give back the same figure drawn lately), also inside ``deferred()``.

    Only for bytes that are a ``Pending.call`` as made: unpickling runs what a pickle names. The
    figure is kept in the memo under the call as made, not as pickled again after unpickling
    (pandas may pickle an unpickled frame to other bytes).
    """
    digest = None if drawn.off else drawn.digest(call)
    svg = None if digest is None else drawn.get(digest)
    if svg is not None:
        return svg
    try:
        name, args, kwargs = pickle.loads(call)  # noqa: S301 - made by _call; its store checks it is unchanged
        function = PLOTS[name]
    except Exception as exc:  # a call pickled by other code: whatever unpickling raised
        raise StaleCall(f"{type(exc).__name__}: {exc}") from exc
    return _draw(digest, function, args, dict(kwargs))


def _draw(digest: bytes | None, function: Callable[..., str], args: tuple, kwargs: dict) -> str:
    """Draw in the report style (matplotlib reads rcParams when artists are made) and keep it."""
    with matplotlib.rc_context(STYLE):
        svg = function(*args, **kwargs)
    if digest is not None:
        drawn.keep(digest, svg)
    return svg


def _styled(function: Callable[_P, str]) -> Callable[_P, str | Pending]:
    """Draw and save inside the report style (matplotlib reads rcParams when artists are made), or
    give back the same figure drawn lately from the same inputs (``drawn``), or inside ``deferred()``
    the call to draw later."""

    @functools.wraps(function)
    def styled(*args: _P.args, **kwargs: _P.kwargs) -> str | Pending:
        call = None if drawn.off and not _deferring.depth else _call(function, args, kwargs)
        digest = None if drawn.off else drawn.digest(call)
        svg = None if digest is None else drawn.get(digest)
        if svg is not None:
            return svg
        if _deferring.depth and call is not None:
            return Pending(call)
        return _draw(digest, function, args, kwargs)

    PLOTS[function.__name__] = function
    return styled


def _render(figure: Figure, key: str) -> str:
    """The figure as inline-ready SVG with ids unique to this figure."""
    _lay_out(figure)
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata=NO_METADATA)
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    prefix = _ident(key)
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}-{m.group(1)}"', svg)
    return re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}-{m.group(1)})", svg)


def _lay_out(figure: Figure) -> None:
    """Run the constrained layout once, measured with the SVG renderer that will draw the figure.

    A figure made with ``layout="constrained"`` is drawn twice by ``savefig``: once with drawing
    switched off, only to run its layout, then for real. The figures are made without a layout
    engine and laid out here instead, so ``savefig`` draws once; the layout is the same (same
    renderer, same dpi), and so are the bytes.
    """
    FigureCanvasSVG(figure)  # the renderer the layout measures text with is then the SVG one
    ConstrainedLayoutEngine().execute(figure)


def _figure(width: float, height: float) -> Figure:
    """An empty figure; ``_render`` lays it out (constrained) before drawing it."""
    return Figure(figsize=(width, height))


def _plain_numbers(axis) -> None:
    """Tick labels as plain numbers (0.5, 10, 200) rather than powers of ten on a log axis."""
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(lambda value, _: ""))


def _title(ax, text: str, **kwargs: Any) -> None:
    """The axes' title, at its left just above the axes.

    ``y=1`` puts it there directly. Left to itself, matplotlib measures the axes' x and y axis at
    every layout pass and draw to lift a title over tick labels on top, which no figure here has.
    """
    ax.set_title(text, loc="left", y=1.0, **kwargs)


def _grid(ax) -> None:
    ax.grid(True, color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)


# --- Kaplan–Meier ------------------------------------------------------------------------------


@dataclass(frozen=True)
class KmPanel:
    """One Kaplan–Meier panel: the curve rows of ``kaplan_meier`` and what to call each group.

    ``groups`` pairs each stratum label of the curve (``intrathecal=1``) with a label for people.
    ``at_risk`` has ``group``, ``time``, ``at_risk``; it is printed under the panel.
    """

    title: str
    curve: pd.DataFrame
    groups: Sequence[tuple[str, str]]
    xlabel: str
    ylabel: str
    at_risk: pd.DataFrame | None = None
    note: str = ""
    confidence: bool = True


def _km_steps(rows: pd.DataFrame, xmax: float) -> tuple[np.ndarray, ...]:
    """The curve's corners at the resolution of the drawing.

    A row where neither the estimate nor its band moves (a censoring) adds nothing to a step drawn
    ``where="post"``; of several corners within one ``STEP_RESOLUTION`` of the time axis only the
    last is drawn (the drops between merge into one, moved by less than that width). So a curve of
    100,000 patients is at most a few hundred points, like one of 300. The last row is always kept.
    """
    times = np.concatenate([[0.0], rows["time"].to_numpy(dtype=float)])
    survival = np.concatenate([[1.0], rows["survival"].to_numpy(dtype=float)])
    lower = np.concatenate([[1.0], rows["lower"].to_numpy(dtype=float)])
    upper = np.concatenate([[1.0], rows["upper"].to_numpy(dtype=float)])
    values = np.vstack([survival, lower, upper])
    before, after = values[:, :-1], values[:, 1:]
    same = (before == after) | (np.isnan(before) & np.isnan(after))
    keep = np.concatenate([[True], ~same.all(axis=0)])
    keep[-1] = True
    corners = np.flatnonzero(keep)
    cells = np.floor(times[corners] / (xmax * STEP_RESOLUTION or 1.0))
    last_in_cell = corners[np.concatenate([cells[1:] != cells[:-1], [True]])]
    kept = np.union1d([0, len(times) - 1], last_in_cell)
    return times[kept], survival[kept], lower[kept], upper[kept]


#: Share of the time axis within which corners of a curve are drawn as one (under a point wide).
STEP_RESOLUTION = 1 / 300
#: Censoring marks closer than this share of the time axis are drawn once: they overlap anyway.
MARK_RESOLUTION = 1 / 200


def _censor_marks(rows: pd.DataFrame, xmax: float) -> tuple[np.ndarray, np.ndarray]:
    """Each distinct censoring mark once, at the resolution of the drawing (thousands of censored
    patients would otherwise be thousands of overlapping marks in the SVG)."""
    censored = rows[rows["censored"] > 0]
    cell = np.round(censored["time"].to_numpy(dtype=float) / (xmax * MARK_RESOLUTION or 1.0))
    survival = censored["survival"].to_numpy(dtype=float)
    _, first = np.unique(np.column_stack([cell, np.round(survival, 2)]), axis=0, return_index=True)
    first.sort()
    return censored["time"].to_numpy(dtype=float)[first], survival[first]


@_styled
def km_plot(key: str, panels: Sequence[KmPanel], *, columns: int | None = None) -> str:
    """Kaplan–Meier curves, ``columns`` panels a row, with censoring marks, 95% bands and numbers at risk."""
    columns = min(columns or len(panels), len(panels))
    panel_rows = math.ceil(len(panels) / columns)
    n_groups = max(len(panel.groups) for panel in panels)
    has_risk = any(panel.at_risk is not None for panel in panels)
    risk_height = 0.28 * n_groups + 0.35 if has_risk else 0.0
    heights = [4.0, risk_height] * panel_rows if has_risk else [4.0] * panel_rows
    figure = _figure((5.6 if columns == 1 else 4.6) * columns, sum(heights))
    grid = figure.add_gridspec(len(heights), columns, height_ratios=heights)
    for index, panel in enumerate(panels):
        row, column = divmod(index, columns)
        ax = figure.add_subplot(grid[row * (2 if has_risk else 1), column])
        prefix = f"panel{index + 1}-" if len(panels) > 1 else ""
        _km_axes(ax, panel, prefix)
        if has_risk:
            _at_risk_axes(figure.add_subplot(grid[row * 2 + 1, column], sharex=ax), panel, prefix)
    return _render(figure, key)


def _km_axes(ax, panel: KmPanel, prefix: str) -> None:
    xmax = float(panel.curve["time"].max()) if not panel.curve.empty else 1.0
    for index, (group, label) in enumerate(panel.groups):
        rows = panel.curve[panel.curve["group"] == group]
        if rows.empty:
            continue
        colour = PALETTE[index % len(PALETTE)]
        times, survival, lower, upper = _km_steps(rows, xmax)
        (line,) = ax.step(times, survival, where="post", color=colour, linewidth=1.6, label=label)
        line.set_gid(f"{prefix}km-{_ident(group)}")
        if panel.confidence:
            band = ax.fill_between(times, lower, upper, step="post", color=colour, alpha=0.12, linewidth=0)
            band.set_gid(f"{prefix}ci-{_ident(group)}")
        mark_times, mark_survival = _censor_marks(rows, xmax)
        (marks,) = ax.plot(
            mark_times, mark_survival, linestyle="none", marker="|", markersize=6, color=colour
        )
        marks.set_gid(f"{prefix}censor-{_ident(group)}")
    ax.set_xlim(0, xmax * 1.02)
    if panel.at_risk is not None and not panel.at_risk.empty:
        # The ticks are the times the numbers at risk are counted at, so each count sits under its tick.
        ax.set_xticks(sorted(float(t) for t in panel.at_risk["time"].unique()))
    ax.set_ylim(0, 1.03)
    ax.set_xlabel(panel.xlabel)
    ax.set_ylabel(panel.ylabel)
    _title(ax, panel.title)
    _grid(ax)
    if len(panel.groups) > 1:
        ax.legend(loc="lower left")
    if panel.note:
        ax.text(0.98, 0.97, panel.note, transform=ax.transAxes, ha="right", va="top", color=INK)


def _at_risk_axes(ax, panel: KmPanel, prefix: str) -> None:
    """The numbers at risk as a small table under the curves, one coloured row per group."""
    ax.set_gid(f"{prefix}at-risk")
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.tick_params(axis="y", length=0)
    ax.xaxis.set_visible(False)  # shares the curves' ticks; drawn, they would be invisible work
    ax.tick_params(axis="y", pad=16, labelsize=8)
    rows = list(range(len(panel.groups)))[::-1]
    ax.set_ylim(-0.6, len(panel.groups) - 0.4)
    ax.set_yticks(rows, [label for _, label in panel.groups])
    _title(ax, "Number at risk", fontsize=8, fontweight="normal", color=MUTED)
    for index, ((group, _), y, tick) in enumerate(zip(panel.groups, rows, ax.get_yticklabels(), strict=True)):
        colour = PALETTE[index % len(PALETTE)]
        tick.set_color(colour)
        if panel.at_risk is None:
            continue
        counts = panel.at_risk[panel.at_risk["group"] == group]
        for time, count in zip(counts["time"], counts["at_risk"], strict=True):
            ax.text(time, y, f"{int(count)}", ha="center", va="center", fontsize=8, color=colour)


# --- balance, effects, distributions -------------------------------------------------------------


@_styled
def love_plot(key: str, rows: Sequence[tuple[str, float, float]], *, threshold: float = 0.1) -> str:
    """|SMD| of each covariate before (open) and after (filled) matching, with the 0.1 line."""
    labels = [label for label, _, _ in rows][::-1]
    before = [abs(value) for _, value, _ in rows][::-1]
    after = [abs(value) for _, _, value in rows][::-1]
    figure = _figure(6.0, 0.42 * len(rows) + 1.2)
    ax = figure.add_subplot()
    positions = np.arange(len(rows))
    ax.hlines(positions, np.minimum(before, after), np.maximum(before, after), color=GRID, linewidth=2)
    (points,) = ax.plot(
        before, positions, "o", mfc="white", mec=PALETTE[1], mew=1.5, ms=7, label="Before matching"
    )
    points.set_gid("smd-before")
    (points,) = ax.plot(after, positions, "o", color=PALETTE[0], ms=7, label="After matching")
    points.set_gid("smd-after")
    ax.axvline(threshold, color=MUTED, linestyle="--", linewidth=1)
    ax.set_yticks(positions, labels)
    ax.set_xlim(0, max([*before, *after, threshold]) * 1.15)
    ax.set_xlabel("Absolute standardized mean difference")
    _grid(ax)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2)
    return _render(figure, key)


@dataclass(frozen=True)
class Effect:
    """One row of a forest plot: an estimate with its 95% interval (odds or hazard ratio)."""

    label: str
    estimate: float
    lower: float
    upper: float


@_styled
def forest_plot(key: str, effects: Sequence[Effect], *, xlabel: str) -> str:
    """Ratios on a log axis with their intervals, the line of no effect, and the values as text."""
    figure = _figure(7.0, 0.38 * len(effects) + 1.1)
    ax = figure.add_subplot()
    positions = np.arange(len(effects))[::-1]
    estimates = np.array([e.estimate for e in effects])
    lower = np.array([e.lower for e in effects])
    upper = np.array([e.upper for e in effects])
    bars = ax.errorbar(
        estimates,
        positions,
        xerr=[estimates - lower, upper - estimates],
        fmt="s",
        color=PALETTE[0],
        ecolor=INK,
        elinewidth=1.2,
        capsize=3,
        markersize=6,
    )
    bars.lines[0].set_gid("forest-estimates")
    ax.axvline(1.0, color=MUTED, linestyle="--", linewidth=1)
    ax.set_xscale("log")
    span = np.concatenate([lower, upper, [1.0]])
    low, high = span.min() / 1.6, span.max() * 1.6
    ax.set_xlim(low, high)
    # Plain numbers (0.5, 1, 2) rather than powers of ten: readers of clinical papers expect them.
    ax.xaxis.set_major_locator(FixedLocator([t for t in RATIO_TICKS if low <= t <= high]))
    ax.xaxis.set_minor_locator(NullLocator())
    _plain_numbers(ax.xaxis)
    ax.set_yticks(positions, [e.label for e in effects])
    ax.set_ylim(-0.7, len(effects) - 0.3)
    ax.set_xlabel(xlabel)
    _grid(ax)
    for effect, y in zip(effects, positions, strict=True):
        ax.annotate(
            f"{effect.estimate:.2f} ({effect.lower:.2f}–{effect.upper:.2f})",
            xy=(1.0, y),
            xycoords=("axes fraction", "data"),
            xytext=(8, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            color=INK,
        )
    return _render(figure, key)


def _distinct_marks(line: Line2D, span: float) -> None:
    """Keep one of the outlier marks that fall within ``MARK_RESOLUTION`` of the value axis of each
    other (they would be drawn on top of each other; at 100,000 patients they are thousands)."""
    y = np.asarray(line.get_ydata(), dtype=float)
    if y.size < 2 or span <= 0:
        return
    _, first = np.unique(np.round(y / (span * MARK_RESOLUTION)), return_index=True)
    first.sort()
    line.set_data(np.asarray(line.get_xdata())[first], y[first])


@dataclass(frozen=True)
class PairedGroup:
    """Measurements of one group at its first and its last lumbar puncture."""

    label: str
    before: Sequence[float]
    after: Sequence[float]


@_styled
def paired_box_plot(key: str, groups: Sequence[PairedGroup], *, ylabel: str) -> str:
    """Box plots of the first and last measurement side by side, per group."""
    figure = _figure(2.4 * len(groups) + 1.6, 3.8)
    ax = figure.add_subplot()
    values = np.array([v for g in groups for v in (*g.before, *g.after)], dtype=float)
    span = float(np.nanmax(values) - np.nanmin(values)) if values.size else 0.0
    for index, group in enumerate(groups):
        centre = index * 3.0
        boxes = ax.boxplot(
            [list(group.before), list(group.after)],
            positions=[centre - 0.55, centre + 0.55],
            widths=0.8,
            patch_artist=True,
            showfliers=True,
            medianprops={"color": INK, "linewidth": 1.4},
            flierprops={"marker": "o", "markersize": 3, "markeredgecolor": MUTED},
        )
        for patch, colour in zip(boxes["boxes"], (PALETTE[5], PALETTE[0]), strict=True):
            patch.set_facecolor(colour)
            patch.set_alpha(0.55)
        for fliers in boxes["fliers"]:
            _distinct_marks(fliers, span)
        boxes["boxes"][0].set_gid(f"box-{_ident(group.label)}-first")
        boxes["boxes"][1].set_gid(f"box-{_ident(group.label)}-last")
    ax.set_xticks(
        [index * 3.0 for index in range(len(groups))],
        [f"{g.label}\n(n = {len(g.before)})" for g in groups],
    )
    ax.set_ylabel(ylabel)
    _grid(ax)
    ax.legend(
        handles=[
            Line2D([], [], color=PALETTE[5], linewidth=8, alpha=0.55, label="First LP"),
            Line2D([], [], color=PALETTE[0], linewidth=8, alpha=0.55, label="Last LP"),
        ],
        loc="upper right",
    )
    return _render(figure, key)


@dataclass(frozen=True)
class SlopePanel:
    """Each patient's value before and after, joined by a line (small single-arm cohorts)."""

    title: str
    before: Sequence[float]
    after: Sequence[float]
    ylabel: str
    before_label: str = "Before"
    after_label: str = "After"
    log_scale: bool = False


@_styled
def slope_plot(key: str, panels: Sequence[SlopePanel]) -> str:
    figure = _figure(2.9 * len(panels) + 0.6, 3.6)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for ax, panel in zip(axes, panels, strict=True):
        for before, after in zip(panel.before, panel.after, strict=True):
            ax.plot(
                [0, 1], [before, after], color=PALETTE[5], linewidth=1, marker="o", markersize=3.5, alpha=0.8
            )
        (medians,) = ax.plot(
            [0, 1],
            [np.median(panel.before), np.median(panel.after)],
            color=PALETTE[1],
            linewidth=2.6,
            marker="D",
        )
        medians.set_gid(f"median-{_ident(panel.title)}")
        ax.set_xticks([0, 1], [panel.before_label, panel.after_label])
        ax.set_xlim(-0.3, 1.3)
        if panel.log_scale:
            ax.set_yscale("log")
            _plain_numbers(ax.yaxis)
        ax.set_ylabel(panel.ylabel)
        _title(ax, f"{panel.title} (n = {len(panel.before)})")
        _grid(ax)
    return _render(figure, key)


@_styled
def cumulative_incidence_plot(
    key: str, curve: pd.DataFrame, *, event_label: str, competing_label: str, xlabel: str, ylabel: str
) -> str:
    """The cumulative incidence of an event and of its competing event, as steps from 0.

    ``curve`` has one row per time: ``time``, ``incidence``, ``competing_incidence``, ``censored``
    (the rows of ``analytics.competing_risks.cumulative_incidence``); ticks mark censored patients
    on the event's curve.
    """
    times = np.concatenate([[0.0], curve["time"].to_numpy(dtype=float)])
    figure = _figure(5.6, 3.6)
    ax = figure.add_subplot()
    for gid, column, label, colour in (
        ("cif-event", "incidence", event_label, PALETTE[2]),
        ("cif-competing", "competing_incidence", competing_label, PALETTE[1]),
    ):
        values = np.concatenate([[0.0], curve[column].to_numpy(dtype=float)])
        (line,) = ax.step(times, values, where="post", color=colour, linewidth=1.8, label=label)
        line.set_gid(gid)
    censored = curve[curve["censored"] > 0]
    (marks,) = ax.plot(
        censored["time"], censored["incidence"], linestyle="none", marker="|", markersize=7, color=PALETTE[2]
    )
    marks.set_gid("cif-censor")
    ax.set_xlim(0, (float(times.max()) if len(times) else 1.0) * 1.05 + 0.25)
    ax.set_ylim(0, 1.03)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(loc="center right")
    _grid(ax)
    return _render(figure, key)


@dataclass(frozen=True)
class TrajectoryPanel:
    """Each patient's values over time (thin lines) and the median at fixed times (a thick line).

    ``lines`` pairs a patient's label with their times and values.
    """

    title: str
    ylabel: str
    lines: Sequence[tuple[str, Sequence[float], Sequence[float]]]
    median_times: Sequence[float]
    median_values: Sequence[float]
    yticks: Sequence[float] = ()


@_styled
def trajectory_plot(key: str, panels: Sequence[TrajectoryPanel], *, xlabel: str, marker_label: str) -> str:
    """Spaghetti plots side by side, with a dashed line at time 0 (``marker_label``)."""
    figure = _figure(5.2 * len(panels), 3.9)
    axes = figure.subplots(1, len(panels), squeeze=False)[0]
    for index, (ax, panel) in enumerate(zip(axes, panels, strict=True)):
        prefix = f"panel{index + 1}-" if len(panels) > 1 else ""
        for label, times, values in panel.lines:
            (line,) = ax.plot(
                times, values, color=PALETTE[0], linewidth=0.9, alpha=0.4, marker="o", markersize=2
            )
            line.set_gid(f"{prefix}trajectory-{_ident(label)}")
        (median,) = ax.plot(
            panel.median_times, panel.median_values, color=PALETTE[1], linewidth=2.4, label="Median"
        )
        median.set_gid(f"{prefix}median")
        ax.axvline(0, color=MUTED, linewidth=1, linestyle="--")
        ax.text(0, 1.01, f" {marker_label}", transform=ax.get_xaxis_transform(), color=MUTED, fontsize=8)
        if panel.yticks:
            ax.set_yticks(list(panel.yticks))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(panel.ylabel)
        _title(ax, panel.title, pad=14)
        ax.legend(loc="best")
        _grid(ax)
    return _render(figure, key)


# --- swimmer plot ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lane:
    """One patient's course from the first intrathecal dose (all times in months)."""

    label: str
    length: float
    doses: Sequence[float] = field(default_factory=tuple)
    progression: Sequence[float] = field(default_factory=tuple)
    death: float | None = None
    last_contact: float | None = None
    group: str = ""


@_styled
def swimmer_plot(key: str, lanes: Sequence[Lane], *, groups: Sequence[str], xlabel: str) -> str:
    """One bar per patient: intrathecal doses, LM progression, death or last contact (alive)."""
    figure = _figure(9.0, 0.2 * len(lanes) + 1.4)
    ax = figure.add_subplot()
    colours = {group: PALETTE[index % len(PALETTE)] for index, group in enumerate(groups)}
    positions = np.arange(len(lanes))[::-1]
    bars = ax.barh(
        positions,
        [lane.length for lane in lanes],
        height=0.62,
        color=[colours.get(lane.group, PALETTE[0]) for lane in lanes],
        alpha=0.3,
        linewidth=0,
    )
    for bar, lane in zip(bars.patches, lanes, strict=True):
        bar.set_gid(f"lane-{_ident(lane.label)}")
    _lane_marks(ax, [(lane.doses, y) for lane, y in zip(lanes, positions, strict=True)], "|", INK, 6, 0.9)
    _lane_marks(
        ax, [(lane.progression, y) for lane, y in zip(lanes, positions, strict=True)], "v", PALETTE[4], 5
    )
    deaths = [([lane.death], y) for lane, y in zip(lanes, positions, strict=True) if lane.death is not None]
    _lane_marks(ax, deaths, "X", PALETTE[1], 6)
    contacts = [
        ([lane.last_contact], y)
        for lane, y in zip(lanes, positions, strict=True)
        if lane.last_contact is not None
    ]
    _lane_marks(ax, contacts, ">", PALETTE[2], 5)
    ax.set_yticks(positions, [lane.label for lane in lanes], fontsize=7)
    ax.set_ylim(-0.8, len(lanes) - 0.2)
    ax.set_xlim(0, max((lane.length for lane in lanes), default=1.0) * 1.04 + 0.5)
    ax.set_xlabel(xlabel)
    _grid(ax)
    ax.grid(False, axis="y")
    handles = [Line2D([], [], color=colours[g], linewidth=8, alpha=0.3, label=g) for g in groups] + [
        Line2D([], [], color=INK, marker="|", linestyle="none", markersize=8, label="Intrathecal dose"),
        Line2D([], [], color=PALETTE[4], marker="v", linestyle="none", label="LM progression"),
        Line2D([], [], color=PALETTE[1], marker="X", linestyle="none", label="Death"),
        Line2D([], [], color=PALETTE[2], marker=">", linestyle="none", label="Last contact (alive)"),
    ]
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=3)
    return _render(figure, key)


def _lane_marks(
    ax,
    marks: Sequence[tuple[Sequence[float], float]],
    marker: str,
    colour: str,
    size: float,
    edge: float | None = None,
) -> None:
    """One kind of mark of every lane as one line of markers: (times, lane position) pairs. A plot call
    per lane and kind was four artists a patient to make and draw; drawn, the marks are the same."""
    xs = [float(t) for times, _ in marks for t in times]
    ys = [float(y) for times, y in marks for _ in times]
    if xs:
        ax.plot(xs, ys, linestyle="none", marker=marker, color=colour, markersize=size, markeredgewidth=edge)


@_styled
def swimmer_summary_plot(
    key: str, followed: pd.DataFrame, injections: pd.DataFrame, *, groups: Sequence[str], xlabel: str
) -> str:
    """The swimmer plot of a cohort too large for one bar per patient: per month since the first dose
    and per group, the patients still followed (top) and the intrathecal injections given (bottom).

    ``followed`` and ``injections``: one row per month (the index), one column per group.
    """
    figure = _figure(9.0, 5.2)
    top, bottom_ax = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 1]})
    colours = {group: PALETTE[index % len(PALETTE)] for index, group in enumerate(groups)}
    for group in groups:
        if group in followed:
            (line,) = top.step(
                followed.index.to_numpy(dtype=float),
                followed[group].to_numpy(dtype=float),
                where="post",
                color=colours[group],
                linewidth=1.6,
                label=group,
            )
            line.set_gid(f"followed-{_ident(group)}")
    top.set_ylabel("Patients followed")
    top.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=4)
    _grid(top)
    months = injections.index.to_numpy(dtype=float)
    stacked = np.zeros(len(injections))
    for group in groups:
        if group not in injections:
            continue
        counts = injections[group].to_numpy(dtype=float)
        bars = bottom_ax.bar(
            months + 0.5, counts, bottom=stacked, width=0.9, color=colours[group], linewidth=0
        )
        if bars.patches:
            bars.patches[0].set_gid(f"injections-{_ident(group)}")
        stacked += counts
    bottom_ax.set_ylabel("Injections per month")
    bottom_ax.set_xlabel(xlabel)
    bottom_ax.set_xlim(left=0)
    _grid(bottom_ax)
    bottom_ax.grid(False, axis="x")
    return _render(figure, key)


# --- dose timeline -------------------------------------------------------------------------------

#: How each injection is drawn: (label, colour, filled).
INJECTION_STYLES = {
    "given": ("Given as planned", PALETTE[2], True),
    "changed": ("Changed from the plan", PALETTE[4], True),
    "missed": ("Planned, missed", PALETTE[1], False),
    "unplanned": ("Outside a planned course", PALETTE[0], True),
}


@dataclass(frozen=True)
class DoseLane:
    """One patient's injections: times since the first dose, each with its status and main dose (mg)."""

    label: str
    times: Sequence[float]
    statuses: Sequence[str]
    doses_mg: Sequence[float | None]


@_styled
def dose_timeline_plot(key: str, lanes: Sequence[DoseLane], *, xlabel: str, dose_label: str) -> str:
    """One row per patient: each injection as a marker sized by its main dose, coloured by whether it
    was given as planned, changed, missed or outside a planned course."""
    many = len(lanes) > 60
    figure = _figure(9.0, (0.09 if many else 0.22) * len(lanes) + 1.6)
    ax = figure.add_subplot()
    positions = np.arange(len(lanes))[::-1]
    largest = (
        max((d for lane in lanes for d in lane.doses_mg if d is not None and d == d), default=1.0) or 1.0
    )
    for status, (label, colour, filled) in INJECTION_STYLES.items():
        xs, ys, sizes = [], [], []
        for lane, y in zip(lanes, positions, strict=True):
            for time, state, dose in zip(lane.times, lane.statuses, lane.doses_mg, strict=True):
                if state != status:
                    continue
                xs.append(time)
                ys.append(y)
                sizes.append(8 + 42 * (dose / largest) if dose is not None and dose == dose else 18)
        if not xs:
            continue
        points = ax.scatter(
            xs,
            ys,
            s=_one_size_if_equal(sizes),
            c=colour if filled else "white",
            edgecolors=colour,
            linewidths=0.9,
            label=label,
            zorder=3,
        )
        points.set_gid(f"timeline-{status}")
    _lane_lines(ax, lanes, positions)
    if many:
        ax.set_yticks([])
        ax.set_ylabel(f"{len(lanes)} patients")
    else:
        ax.set_yticks(positions, [lane.label for lane in lanes], fontsize=7)
    ax.set_ylim(-0.8, len(lanes) - 0.2)
    ax.set_xlim(left=-0.5)
    ax.set_xlabel(xlabel)
    _grid(ax)
    ax.grid(False, axis="y")
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=4, title=f"Marker size: {dose_label}")
    return _render(figure, key)


def _one_size_if_equal(sizes: list[float]) -> float | list[float]:
    """Marker sizes as one number when they are all equal (every injection of one dose, as in the
    demo studies): matplotlib's SVG then defines the marker once and places it at each point, where
    a size per point writes each marker as its own path (560 bytes each, 395 KB for the demo study)."""
    return sizes[0] if len(set(sizes)) == 1 else sizes


def _lane_lines(ax, lanes: Sequence[DoseLane], positions: np.ndarray) -> None:
    """Each patient's row as a grey line from their first to their last injection, all of them one
    collection: a line per patient was an artist each to make and draw (a third of the figure)."""
    spans = [
        (y, min(lane.times), max(lane.times)) for lane, y in zip(lanes, positions, strict=True) if lane.times
    ]
    if not spans:
        return
    ys, starts, ends = zip(*spans, strict=True)
    # "projecting" ends, as a Line2D has them (matplotlib's lines.solid_capstyle)
    lines = ax.hlines(ys, starts, ends, color=GRID, linewidth=1.2, capstyle="projecting", zorder=1)
    lines.set_gid("timeline-lanes")


@_styled
def dose_rate_plot(key: str, weekly: pd.DataFrame, *, xlabel: str) -> str:
    """Injections per week as stacked bars by status (``weekly``: one row per week, one column per
    status of ``INJECTION_STYLES``): the dose timeline of a cohort too large for one row per patient."""
    figure = _figure(9.0, 3.4)
    ax = figure.add_subplot()
    weeks = weekly.index.to_numpy(dtype=float)
    bottom = np.zeros(len(weekly))
    for status, (label, colour, filled) in INJECTION_STYLES.items():
        if status not in weekly:
            continue
        counts = weekly[status].to_numpy(dtype=float)
        bars = ax.bar(
            weeks,
            counts,
            bottom=bottom,
            width=0.9,
            color=colour if filled else "white",
            edgecolor=colour,
            linewidth=0.4 if filled else 0.8,
            label=label,
        )
        if bars.patches:
            bars.patches[0].set_gid(f"rate-{status}")
        bottom += counts
    ax.set_xlim(left=-0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Injections per week")
    _grid(ax)
    ax.grid(False, axis="x")
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=4)
    return _render(figure, key)


# --- flow diagram ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowBox:
    """A box of a flow diagram: its text, and boxes branching off to the right (exclusions)."""

    text: str
    side: str = ""
    split: Sequence[str] = ()


@_styled
def flow_diagram(key: str, boxes: Sequence[FlowBox]) -> str:
    """A STROBE/CONSORT-style flow: boxes top to bottom joined by arrows, exclusions to the right,
    and the last box's ``split`` drawn as boxes side by side below it (the groups)."""
    rows = len(boxes) + (1 if boxes and boxes[-1].split else 0)
    figure = _figure(7.2, 1.05 * rows + 0.3)
    ax = figure.add_subplot()
    ax.set_axis_off()
    ax.set_xlim(0, 10)
    ax.set_ylim(-rows + 0.2, 0.8)
    style = {"boxstyle": "round,pad=0.4", "facecolor": "#f4f7fa", "edgecolor": MUTED, "linewidth": 0.8}
    arrow = {"arrowstyle": "-|>", "color": MUTED, "linewidth": 0.9}
    for row, box in enumerate(boxes):
        y = -row
        ax.text(3.2, y, box.text, ha="center", va="center", fontsize=8.5, color=INK, bbox=style, wrap=True)
        if row:
            ax.annotate("", xy=(3.2, y + 0.32), xytext=(3.2, y + 0.68), arrowprops=arrow)
        if box.side:
            ax.annotate("", xy=(6.1, y + 0.5), xytext=(3.2, y + 0.5), arrowprops=arrow)
            ax.text(6.2, y + 0.5, box.side, ha="left", va="center", fontsize=8, color=INK, bbox=style)
    if boxes and boxes[-1].split:
        y = -len(boxes)
        xs = np.linspace(1.4, 5.0, len(boxes[-1].split))
        for x, text in zip(xs, boxes[-1].split, strict=True):
            ax.annotate("", xy=(x, y + 0.32), xytext=(3.2, y + 0.68), arrowprops=arrow)
            ax.text(x, y, text, ha="center", va="center", fontsize=8.5, color=INK, bbox=style)
    ax.set_gid("flow-diagram")
    return _render(figure, key)


@_styled
def bar_plot(key: str, labels: Sequence[str], values: Sequence[float], *, xlabel: str, ylabel: str) -> str:
    """Vertical bars with their counts printed on top (a distribution of counts)."""
    figure = _figure(5.6, 3.0)
    ax = figure.add_subplot()
    bars = ax.bar(labels, values, color=PALETTE[0], width=0.6)
    for bar, value in zip(bars, values, strict=True):
        bar.set_gid(f"bar-{_ident(str(bar.get_x()))}")
        ax.text(
            bar.get_x() + bar.get_width() / 2,
            bar.get_height(),
            f"{value:g}",
            ha="center",
            va="bottom",
            fontsize=8,
            color=INK,
        )
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    _grid(ax)
    return _render(figure, key)
