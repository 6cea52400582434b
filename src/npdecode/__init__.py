"""Decode natural scenes from Allen Brain Observatory Neuropixels spikes."""

__version__ = "0.1.0"
