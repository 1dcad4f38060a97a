"""edge-augment: an Edge Impulse transformation block that augments labelled image datasets."""

__version__ = "0.1.0"
