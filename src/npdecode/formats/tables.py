"""The Allen-style metadata tables beside a raw session: `sessions/probes/channels/units.csv`.

Columns follow AllenSDK's `EcephysProjectCache` (`ecephys_probe_id`,
`ecephys_channel_id`, `ecephys_structure_acronym`, the `*_ccf_coordinate` columns), so a
colleague's AllenSDK code reads them. `fetch.source: allen` takes them from AllenSDK's own
cache; synthetic and local sessions build them from the NWB file
(`npdecode.nwb.read.metadata_tables`). Runs in the AllenSDK environment too: pandas only.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

TABLES = ("sessions", "probes", "channels", "units")


def table_path(folder: str | Path, name: str) -> Path:
    """Where table `name` (one of TABLES) of a raw session folder lives."""
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; expected one of {TABLES}")
    return Path(folder) / f"{name}.csv"


def write_tables(folder: str | Path, tables: dict[str, pd.DataFrame]) -> None:
    """Write every table of TABLES into `folder` (a folder being built, not yet in place)."""
    missing = [name for name in TABLES if name not in tables]
    if missing:
        raise ValueError(f"metadata tables {missing} are missing")
    for name in TABLES:
        tables[name].to_csv(table_path(folder, name), index=False)


def read_tables(folder: str | Path) -> dict[str, pd.DataFrame]:
    """The tables written by `write_tables`."""
    return {name: pd.read_csv(table_path(folder, name)) for name in TABLES}
