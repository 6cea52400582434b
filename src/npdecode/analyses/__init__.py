"""Analyses outside the DVC pipeline: published protocols run on any Allen-format NWB file."""
