"""The 32 real Visual Coding – Neuropixels sessions with natural scenes, as `preset: allen` twins them.

`allen_vc_sessions.csv` (package data, a copy of the lab's `allen-vc-sessions.csv`) lists,
in the order that gives twin ids 1-32: the real session and specimen ids, the units that
pass AllenSDK's default quality filters, channels, probes, the structures recorded and the
units in eight visual areas in one published analysis. Pure pandas: no AllenSDK.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources

import pandas as pd

from npdecode.errors import ParamsError

CSV_NAME = "allen_vc_sessions.csv"
# The eight visual areas with a units_<area> column, in Siegle et al. 2021's hierarchy order
VISUAL_AREAS = ("LGd", "VISp", "VISl", "VISrl", "LP", "VISal", "VISpm", "VISam")
# Families of the other structures the 32 sessions record (CCF acronyms)
HIPPOCAMPUS = frozenset({"CA1", "CA2", "CA3", "DG", "SUB", "ProS", "HPF", "POST"})
THALAMUS = frozenset(
    {"TH", "Eth", "PO", "POL", "PoT", "VPM", "VPL", "VL", "LGv", "IGL", "IntG", "MGv", "MGd",
     "MGm", "SGN", "PIL", "PP", "LD", "ZI"}
)  # fmt: skip
MIDBRAIN = frozenset({"APN", "MB", "NOT", "SCig", "PPT", "MRN", "OP"})
VISUAL_OTHER = frozenset({"VIS", "VISmma", "VISmmp", "VISli"})


@dataclass(frozen=True)
class AllenSession:
    """One real natural-scenes session (a row of the CSV).

    Attributes:
        twin_id: the synthetic session id that mirrors it (1-based row number).
        area_units: units in each of VISUAL_AREAS in the published analysis (0 if none).
    """

    twin_id: int
    session_id: int
    specimen_id: int
    units_passing_default_qc: int
    channel_count: int
    probe_count: int
    structures: tuple[str, ...]
    area_units: dict[str, int]


@functools.cache
def allen_sessions() -> tuple[AllenSession, ...]:
    """The 32 sessions in CSV order (twin id = position + 1)."""
    with resources.files("npdecode.sources").joinpath(CSV_NAME).open() as fh:
        table = pd.read_csv(fh)
    return tuple(
        AllenSession(
            twin_id=i + 1,
            session_id=int(row["session_id"]),
            specimen_id=int(row["specimen_id"]),
            units_passing_default_qc=int(row["units_passing_default_qc"]),
            channel_count=int(row["channel_count"]),
            probe_count=int(row["probe_count"]),
            structures=tuple(str(row["structures"]).split(";")),
            area_units={a: int(row[f"units_{a}"]) for a in VISUAL_AREAS},
        )
        for i, row in table.iterrows()
    )


def twin_of(session_id: int) -> AllenSession:
    """The real session that synthetic session `session_id` mirrors; ParamsError outside 1-32."""
    rows = allen_sessions()
    if not 1 <= session_id <= len(rows):
        raise ParamsError(
            f"session {session_id}: with fetch.synthetic.preset allen the session ids are "
            f"1-{len(rows)} (twins of the {len(rows)} real natural-scenes sessions, in the "
            f"order of {CSV_NAME}); {session_id} is none of them"
        )
    return rows[session_id - 1]
