"""Where sessions come from: `synthetic` (and the Allen twin), `allen`, `local`.

`allen_runner` runs inside the separate AllenSDK environment; `allen` runs it from the
main one. Modules imported on that side (see `allen_runner.ALLEN_ENV_MODULES`) may import
only the standard library, numpy, pandas, h5py, requests, tqdm and allensdk.
"""
