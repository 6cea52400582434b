"""The analyses a lab publishes on top of the decoders: neurometric curves and session
diagnostics (stages), and published protocols and realism checks run on any Allen-format
NWB file (commands)."""
