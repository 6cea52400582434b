"""The 47 sessions of O'Doherty & Sabes' reaching data set (Zenodo record 583331).

Names, monkey and date come from the record's file names. Channel counts: every session
has the 96-channel M1 Utah array; Loco's ten sessions and Indy's first seven (April 2016)
also have the 96-channel S1 array (192 channels). Which Indy sessions lack S1 is taken from
the NDT2 code of Ye & Pandarinath (`context_general_bci`, `RTT_SESSION_ARRAYS`: the 30
Indy sessions from 2016-06-22 on list M1 only), consistent with NeuroBench's loader, which
assumes 96 channels for its three Indy sessions (all from June 2016 or later).

md5s: NeuroBench's `PrimateReaching.md5s` publishes six; others are read from the Zenodo
API's file list at download time (`record_md5s`), so this table never has to be complete.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

RECORD = 583331
RECORD_API = "https://zenodo.org/api/records/{record}"
FILE_URL = "https://zenodo.org/records/{record}/files/{name}.mat?download=1"

_INDY = (
    "20160407_02 20160411_01 20160411_02 20160418_01 20160419_01 20160420_01 20160426_01 "
    "20160622_01 20160624_03 20160627_01 20160630_01 20160915_01 20160916_01 20160921_01 "
    "20160927_04 20160927_06 20160930_02 20160930_05 20161005_06 20161006_02 20161007_02 "
    "20161011_03 20161013_03 20161014_04 20161017_02 20161024_03 20161025_04 20161026_03 "
    "20161027_03 20161206_02 20161207_02 20161212_02 20161220_02 20170123_02 20170124_01 "
    "20170127_03 20170131_02"
).split()
_LOCO = (
    "20170210_03 20170213_02 20170214_02 20170215_02 20170216_02 20170217_02 20170227_04 "
    "20170228_02 20170301_05 20170302_02"
).split()
# Indy's sessions before this date also carry the S1 array (see the module docstring).
_INDY_M1_ONLY_FROM = dt.date(2016, 6, 1)

# Published md5s (NeuroBench 2.3.0, neurobench/datasets/primate_reaching.py).
KNOWN_MD5 = {
    "indy_20170131_02": "2790b1c869564afaa7772dbf9e42d784",
    "indy_20160630_01": "197413a5339630ea926cbd22b8b43338",
    "indy_20160622_01": "c33d5fff31320d709d23fe445561fb6e",
    "loco_20170301_05": "47342da09f9c950050c9213c3df38ea3",
    "loco_20170215_02": "739b70762d838f3a1f358733c426bb02",
    "loco_20170210_03": "4cae63b58c4cb9c8abd44929216c703b",
}


@dataclass(frozen=True)
class MacaqueSession:
    """One session of the record.

    Attributes:
        name: the record's name, e.g. "indy_20160407_02" (the file is `<name>.mat`).
        monkey: "indy" or "loco".
        date: recording date.
        channels: 96 (M1) or 192 (M1 + S1).
    """

    name: str
    monkey: str
    date: dt.date
    channels: int

    @property
    def areas(self) -> tuple[str, ...]:
        """The arrays recorded: ("M1",) or ("M1", "S1")."""
        return ("M1",) if self.channels == 96 else ("M1", "S1")


def _session(monkey: str, stem: str) -> MacaqueSession:
    date = dt.datetime.strptime(stem[:8], "%Y%m%d").date()
    s1 = monkey == "loco" or date < _INDY_M1_ONLY_FROM
    return MacaqueSession(f"{monkey}_{stem}", monkey, date, 192 if s1 else 96)


SESSIONS: tuple[MacaqueSession, ...] = tuple(
    [_session("indy", s) for s in _INDY] + [_session("loco", s) for s in _LOCO]
)
RECORD_BY_NAME = {s.name: s for s in SESSIONS}
# Sessions of the record's monkeys published elsewhere: the Neural Latents Benchmark's
# MC_RTT (DANDI 000129, `npdecode.nwb.nlb`), Indy on 2017-02-02 (M1 array only), and the
# file that holds it. Read with `reach.source: local` only (no twin, no Zenodo file).
NLB_SESSIONS = {
    "indy_20170202_02": MacaqueSession("indy_20170202_02", "indy", dt.date(2017, 2, 2), 96)
}
NLB_FILES = {"indy_20170202_02": "sub-Indy_desc-train_behavior+ecephys.nwb"}
BY_NAME = {**RECORD_BY_NAME, **NLB_SESSIONS}  # every session a stage may be given


def session(name: str) -> MacaqueSession:
    """The session called `name` (the record's or NLB's); ValueError naming the valid form
    otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"unknown macaque session {name!r}: expected one of the record's 47 names, "
            f"e.g. {SESSIONS[0].name!r} (see npdecode.sources.macaque_sessions.SESSIONS), "
            f"or NLB MC_RTT's {', '.join(NLB_SESSIONS)}"
        ) from None


def record_session(name: str) -> MacaqueSession:
    """One of the Zenodo record's 47 sessions; ValueError otherwise (NLB's included)."""
    found = session(name)
    if name not in RECORD_BY_NAME:
        raise ValueError(f"session {name} is NLB MC_RTT's, not one of the Zenodo record's 47")
    return found


def days_apart(a: MacaqueSession, b: MacaqueSession) -> int:
    """Calendar days between two sessions (0 for two sessions on one day)."""
    return abs((a.date - b.date).days)
