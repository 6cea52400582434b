"""Continuous reaching data (macaque): bins and targets, contiguous block splits, the ideal decoder."""
