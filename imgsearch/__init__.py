"""Shared core of the image-search layer: engine configs, embedders, image loading, errors."""
