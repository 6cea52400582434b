"""O'Doherty & Sabes reaching `.mat` files (MATLAB v7.3, i.e. HDF5): `read` and `write`."""
