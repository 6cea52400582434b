"""The analyses a lab publishes on top of the decoders (neurometric curves, diagnostics)."""
