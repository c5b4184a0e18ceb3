"""The report's one plotting helper: each figure is drawn in its own local style and comes back
as inline SVG (the page stays one offline file).

Styles are local on purpose: a global theme (seaborn's set_theme) would restyle every figure
drawn after it, so a figure's look would depend on the order the stages run in, and it would
leak into whatever else shares the process (tests included).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on a compute node: render to files only, before pyplot loads a GUI backend

import matplotlib.pyplot as plt  # noqa: E402 (after the backend is chosen)
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

# A fixed salt for the SVG's element ids and no date: the same results give the same markup.
RC = {"svg.hashsalt": "lora-study"}


def plot_svg(
    draw: Callable[[Figure, Any], None],
    *,
    figsize: tuple[float, float],
    nrows: int = 1,
    ncols: int = 1,
    style: str = "whitegrid",
    grid: bool = False,
) -> str:
    """Call `draw(figure, axes)` on a new figure inside a local seaborn `style` and return the
    figure as `<figure><svg>...</svg></figure>`; `axes` is one Axes, an array of them for
    several, or always a 2-D array with `grid=True`. The figure is closed afterwards and the
    global matplotlib settings are as before."""
    with matplotlib.rc_context(RC), sns.axes_style(style):
        figure, axes = plt.subplots(nrows, ncols, figsize=figsize, squeeze=not grid)
        try:
            draw(figure, axes)
            buffer = io.StringIO()
            figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
        finally:
            plt.close(figure)
    svg = buffer.getvalue()
    return f"<figure>{svg[svg.index('<svg') :]}</figure>"


def palette(count: int) -> list[tuple[float, float, float]]:
    """Colours that stay distinguishable for colour-blind readers, one per line or point."""
    return sns.color_palette("colorblind", count)
