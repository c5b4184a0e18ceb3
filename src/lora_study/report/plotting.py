"""The report's one plotting helper: each figure is drawn in its own local style and comes back
as inline SVG (the page stays one offline file).

Styles are local on purpose: a global theme (matplotlib's rcParams set for good, or seaborn's
set_theme) would restyle every figure drawn after it, so a figure's look would depend on the
order the stages run in, and it would leak into whatever else shares the process (tests
included). Plain matplotlib only: seaborn imports pandas and, where it is installed, scipy,
seconds of start-up for a job that draws a few figures.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on a compute node: render to files only, before pyplot loads a GUI backend

import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)
from matplotlib.figure import Figure  # noqa: E402

# A fixed salt for the SVG's element ids and no date: the same results give the same markup.
RC = {"svg.hashsalt": "lora-study"}
# The two looks the figures use: light axes on white, with a grid behind the data or none.
_PLAIN = {
    "axes.facecolor": "white",
    "axes.edgecolor": "0.8",
    "axes.linewidth": 1.0,
    "axes.axisbelow": True,
    "xtick.bottom": False,
    "ytick.left": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
STYLES = {
    "whitegrid": {**_PLAIN, "axes.grid": True, "grid.color": "0.9", "grid.linestyle": "-"},
    "white": {**_PLAIN, "axes.grid": False},
}
# Okabe-Ito-derived colours that stay distinguishable for colour-blind readers (the order of
# seaborn's "colorblind" palette).
COLOURS = (
    "#0173B2",
    "#DE8F05",
    "#029E73",
    "#D55E00",
    "#CC78BC",
    "#CA9161",
    "#FBAFE4",
    "#949494",
    "#ECE133",
    "#56B4E9",
)


def plot_svg(
    draw: Callable[[Figure, Any], None],
    *,
    figsize: tuple[float, float],
    nrows: int = 1,
    ncols: int = 1,
    style: str = "whitegrid",
    grid: bool = False,
) -> str:
    """Call `draw(figure, axes)` on a new figure inside a local `style` (STYLES) and return the
    figure as `<figure><svg>...</svg></figure>`; `axes` is one Axes, an array of them for
    several, or always a 2-D array with `grid=True`. The figure is closed afterwards and the
    global matplotlib settings are as before."""
    with matplotlib.rc_context({**RC, **STYLES[style], "axes.prop_cycle": matplotlib.cycler(color=COLOURS)}):
        figure, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=not grid)
        try:
            draw(figure, axes)
            buffer = io.StringIO()
            figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
        finally:
            plt.close(figure)
    svg = buffer.getvalue()
    return f"<figure>{svg[svg.index('<svg') :]}</figure>"


def palette(count: int) -> list[str]:
    """Colours that stay distinguishable for colour-blind readers, one per line or point
    (repeating after ten)."""
    return [COLOURS[index % len(COLOURS)] for index in range(count)]
