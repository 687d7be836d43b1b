"""Maps to pictures: heatmaps on each run's colour scale, outlines, colour bars, plots and the HTML report."""

from nsad.viz.heatmap import (
    REGION_COLOUR,
    TRUTH_COLOUR,
    colorize,
    colour_bar,
    draw_outlines,
    grid,
    heatmap_figure,
    heatmap_overlay,
    overlay,
    to_display,
)
from nsad.viz.scale import HeatmapScale, fallback_scale, fit_scale, run_scale

__all__ = [
    "REGION_COLOUR",
    "TRUTH_COLOUR",
    "HeatmapScale",
    "colorize",
    "colour_bar",
    "draw_outlines",
    "fallback_scale",
    "fit_scale",
    "grid",
    "heatmap_figure",
    "heatmap_overlay",
    "overlay",
    "run_scale",
    "to_display",
]
