"""The package version (one place, read by __init__ and written into checkpoints)."""

__version__ = "0.1.0"
