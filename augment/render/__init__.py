"""Rendering one sample: recipes and presets, the op chain, boxes, decode and encode."""
