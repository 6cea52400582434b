"""Allen-format NWB files: `read` (h5py; both environments) and `write` (pynwb; main only)."""
