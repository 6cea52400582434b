"""Decoders: every model maps x (B, T, U) to logits (B, C)."""
