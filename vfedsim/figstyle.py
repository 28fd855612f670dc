"""Paper-ready figure conventions shared by every figure vfedsim draws (matplotlib, no pyplot).

- Sizes fit a two-column paper: `SINGLE_COLUMN_IN` (3.5 in, IEEE/ACM one column) and `DOUBLE_COLUMN_IN`
  (7.16 in, the full text width), fonts at 8 pt (`RC`), so that a figure placed at its natural width keeps
  its text the size of a caption's.
- Formats: `FORMATS` (``png`` at `DPI`, ``pdf`` and ``svg`` as vectors); `save` writes any of them through a
  temporary file and a rename.
- Colours: `PHASE_COLOURS` (a client's phase), `CAUSE_COLOURS` (a drop's cause), `colour_of` (one colour per
  value of the colour key, e.g. the selection policy), `linestyle_of` (one dash pattern per value of the
  other key).
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["SINGLE_COLUMN_IN", "DOUBLE_COLUMN_IN", "DPI", "FORMATS", "RC", "PHASE_COLOURS", "PHASE_LABELS",
           "CAUSE_COLOURS", "styled", "render", "legend_outside", "save", "capture", "check_format", "colour_of", "linestyle_of", "LINESTYLES"]

SINGLE_COLUMN_IN = 3.5
"""[in] one column of a two-column paper (IEEE: 3.5 in; ACM: 3.33 in)."""
DOUBLE_COLUMN_IN = 7.16
"""[in] the full text width of a two-column paper (IEEE: 7.16 in; ACM: 7.0 in)."""
DPI = 300
"""Raster resolution [dots per inch] of PNG figures."""
FORMATS = ("png", "pdf", "svg")

RC = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "xtick.labelsize": 7, "ytick.labelsize": 7,
    "legend.fontsize": 7, "legend.title_fontsize": 7, "figure.titlesize": 9, "lines.linewidth": 1.2,
    "lines.markersize": 3.5, "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5,
    "axes.spines.top": False, "axes.spines.right": False, "legend.frameon": False,
    "svg.fonttype": "none", "pdf.fonttype": 42,
}
"""rcParams applied while a figure is drawn (`new_figure` and `save` use `matplotlib.rc_context`)."""

PHASE_COLOURS = {
    "selected": "#bdbdbd", "download": "#1f77b4", "compute": "#ff7f0e", "wait_coverage": "#9467bd",
    "upload": "#2ca02c", "idle": "#d9d9d9",
}
PHASE_LABELS = {"selected": "selected (before download)", "download": "download", "compute": "local training",
                "wait_coverage": "waiting for coverage", "upload": "upload", "idle": "not engaged"}

CAUSE_COLOURS = {
    "deadline": "#d62728", "left_coverage": "#8c564b", "trip_ended": "#e377c2", "link_outage": "#7f7f7f",
    "no_coverage": "#bcbd22", "handover_failed": "#17becf", "cancelled": "#ff9896", "over_commit": "#c5b0d5",
    "stale": "#c49c94", "run_ended": "#f7b6d2", "min_participants": "#dbdb8d",
}
"""A drop's cause -> colour (events.csv ``cause``); an unknown cause gets a grey."""

_PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442", "#000000")
"""Okabe-Ito: distinguishable with the common colour-vision deficiencies, and in greyscale by lightness."""
LINESTYLES = ("-", "--", ":", "-.", (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)), (0, (7, 2)), (0, (3, 1, 1, 1)))


def colour_of(index: int) -> str:
    """The ``index``-th colour of the palette (cycling)."""
    return _PALETTE[index % len(_PALETTE)]


def linestyle_of(index: int) -> object:
    """The ``index``-th dash pattern (cycling)."""
    return LINESTYLES[index % len(LINESTYLES)]


def styled() -> object:
    """A context manager (and decorator) that applies `RC`: build a whole figure inside it, since
    matplotlib reads the style when each artist is created."""
    import matplotlib

    return matplotlib.rc_context(RC)


def check_format(fmt: str) -> str:
    """``fmt`` lower-cased if it is one of `FORMATS`; else a `ScenarioError` on ``--format``."""
    from .errors import ScenarioError

    value = str(fmt).lower().lstrip(".")
    if value not in FORMATS:
        raise ScenarioError("--format", f"unknown figure format {fmt!r}", allowed=FORMATS, value=fmt)
    return value


_CAPTURE: ContextVar[list[tuple[str, Figure]] | None] = ContextVar("vfedsim_capture_figures", default=None)


@contextmanager
def capture() -> Iterator[list[tuple[str, Figure]]]:
    """Within this block, `save` (and `vfedsim.plot`'s figures) write nothing: they append ``(file name,
    figure)`` to the yielded list instead (the HTML report draws the same figures in memory this way)."""
    figures: list[tuple[str, Figure]] = []
    token = _CAPTURE.set(figures)
    try:
        yield figures
    finally:
        _CAPTURE.reset(token)


def captured(fig: Figure, path: Path) -> bool:
    """Whether ``fig`` went to an active `capture` (then nothing is to be written)."""
    figures = _CAPTURE.get()
    if figures is None:
        return False
    figures.append((path.name, fig))
    return True


def save(fig: Figure, path: str | Path, *, fmt: str | None = None) -> Path:
    """Write ``fig`` to ``path`` (the suffix is replaced by ``.<fmt>`` when ``fmt`` is given) atomically."""
    import matplotlib

    path = Path(path)
    if fmt is not None:
        path = path.with_suffix("." + check_format(fmt))
    if captured(fig, path):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas = FigureCanvasAgg(fig)
    kind = path.suffix.lstrip(".").lower() or "png"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with matplotlib.rc_context(RC):
            canvas.print_figure(tmp, format=kind, dpi=DPI, metadata=_metadata(kind))
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def render(fig: Figure, fmt: str = "png", *, dpi: int = 150) -> bytes:
    """``fig`` encoded in memory (the HTML report embeds figures this way)."""
    import io

    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context(RC):
        FigureCanvasAgg(fig).print_figure(buf, format=fmt, dpi=dpi, metadata=_metadata(fmt))
    return buf.getvalue()


def _metadata(kind: str) -> dict[str, object] | None:
    """No creation date or software version in the file: the same run draws the same bytes (PDF, SVG)."""
    if kind == "pdf":
        return {"CreationDate": None, "Producer": None, "Creator": None}
    if kind == "svg":
        return {"Date": None, "Creator": None}
    if kind == "png":
        return {"Software": None}
    return None


def legend_outside(fig: Figure, handles: Sequence[object], labels: Sequence[str] | None = None, *,
                   title: str | None = None, where: str = "right") -> None:
    """A figure legend outside the axes (``where``: ``right`` or ``bottom``), never over the data."""
    loc = "outside right upper" if where == "right" else "outside lower center"
    kwargs: dict[str, object] = {"loc": loc, "title": title}
    if where != "right":
        kwargs["ncols"] = min(len(handles), 6)
    if labels is None:
        fig.legend(handles=list(handles), **kwargs)
    else:
        fig.legend(list(handles), list(labels), **kwargs)
