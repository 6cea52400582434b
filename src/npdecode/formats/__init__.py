"""On-disk formats: one module writes and reads each (file names spelled once, there)."""
