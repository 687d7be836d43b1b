"""Maps to pictures: heatmaps, overlays and image grids a person can read."""

from nsad.viz.heatmap import colorize, grid, overlay, to_display

__all__ = ["colorize", "grid", "overlay", "to_display"]
