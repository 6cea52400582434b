"""Developer commands (not run by the pipeline): `python -m npdecode.devtools.code_deps`."""
