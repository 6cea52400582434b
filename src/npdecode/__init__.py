"""Decode natural scenes from Allen Brain Observatory Neuropixels spikes."""

import os

# Bitwise reproducible CPU results with more than one thread: MKL otherwise picks its
# kernels and reduction order per run (measured: 1 in 4 two-thread LSTM trainings on a
# busy 2-core machine differed in the last bits). Set before torch loads MKL; a value the
# user set wins. Costs nothing measurable here (6.1-7.4 vs 6.4-6.8 CPU-s for the same fit).
os.environ.setdefault("MKL_CBWR", "COMPATIBLE")

__version__ = "0.1.0"
