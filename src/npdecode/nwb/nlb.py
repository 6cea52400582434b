"""The Neural Latents Benchmark's MC_RTT NWB (DANDI 000129) as a reaching session.

MC_RTT is one session of O'Doherty & Sabes' random-target task: the file's subject `Indy`
and `session_id` `20170202_02` name it `indy_20170202_02` (`session_name`), recorded two
days after the Zenodo record's last session, so it is not one of the record's 47.

Layout (what nlb_tools' `NWBDataset.load` reads, pynwb's names):
- `units`: `spike_times` (s), `obs_intervals` (the recorded stretches, the same for every
  unit), `electrodes` (one row of the 96-channel M1 Utah array per unit), `heldout`;
- `processing/behavior`: `cursor_pos`, `target_pos` (x, y, mm) and `finger_pos`
  (x, y, z, mm), recorded at 250 Hz and stored upsampled to 1 kHz; `finger_vel` (mm/s);
- `intervals/trials`: NLB's 600 ms windows with their benchmark `split`.
The train file `sub-Indy_desc-train_behavior+ecephys.nwb` holds all of these; the test
file (`sub-Indy_desc-test_ecephys.nwb`) holds the held-in units' spikes only, so it has
nothing to decode (`read_nlb` says so).

`read_nlb` yields the `Reaching` our `.mat` reader yields: the record's 4 ms grid is every
fourth 1 kHz sample, counted from the first observed millisecond. The behaviour was
sampled at 250 Hz and only upsampled, so this keeps a sample every 4 ms, as the `.mat`
has, and averages nothing. Stretches between observation intervals are
`Reaching.unobserved`: their cursor is interpolated linearly across the gap (so velocity
stays finite) and `npdecode.reaching.prepare` excludes their bins. Sorted units only: the
file has no unsorted threshold crossings. `write_nlb` writes this layout with pynwb (the
tests' files, from a twin); every bad input gives one line naming the session and file.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
from pynwb import NWBHDF5IO, NWBFile, TimeSeries
from pynwb.behavior import SpatialSeries
from pynwb.file import Subject

from npdecode.errors import DataError
from npdecode.formats.files import atomic_path
from npdecode.mat.read import Reaching, Units
from npdecode.mat.write import MatSession

RATE_HZ = 1000.0  # NLB's behaviour grid
STEP = 4  # 1 kHz samples per 4 ms sample of the record's grid
SAMPLE_S = STEP / RATE_HZ
TRAIN_FILE = "sub-{subject}_desc-train_behavior+ecephys.nwb"
SESSION_ID = re.compile(r"\d{8}_\d{2}")
KINEMATICS = ("cursor_pos", "target_pos")


class _Bad(Exception):
    """A check failed; `read_nlb` adds the session and the file."""


def session_name(subject: str, session_id: str) -> str:
    """Our name of an NLB file's session: `indy_20170202_02` from `Indy`, `20170202_02`."""
    return f"{subject.lower()}_{session_id}"


def read_nlb(path: str | Path, session: str, units: Units = "sorted") -> Reaching:
    """Read and check an NLB MC_RTT NWB as the `Reaching` of session `session`.

    Raises:
        DataError: not an NWB file, another session's file, no `units` table or
            `processing/behavior` series, a series off the 1 kHz grid, NaN in `cursor_pos`
            inside an observation interval, spikes outside the observed time range or
            unsorted, a unit on no or several electrodes, or `units: crossings`.
    """
    path = Path(path)
    if units != "sorted":
        raise DataError(f"session {session}: {path}: the NLB file holds sorted units only "
                        "(no threshold crossings): use reach.units: sorted")  # fmt: skip
    try:
        with NWBHDF5IO(str(path), "r") as io:
            return _read(io.read(), session)
    except _Bad as err:
        raise DataError(f"session {session}: {path}: {err}") from None
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise DataError(f"session {session}: {path}: truncated or not an NWB file ({err})") from err


def _read(nwb: NWBFile, session: str) -> Reaching:
    named = session_name(_subject(nwb), str(nwb.session_id or ""))
    if named != session:
        raise _Bad(f"the file is session {named!r} (subject and session_id), not {session!r}")
    if nwb.units is None:
        raise _Bad("no units table")
    observed = _observed(nwb)
    raw = {k: _series(nwb, k) for k in KINEMATICS}
    start = raw["cursor_pos"][0]
    for k, (s0, v) in raw.items():
        if v.shape[0] != raw["cursor_pos"][1].shape[0] or abs(s0 - start) > 1e-9:
            raise _Bad(f"processing/behavior/{k} does not share cursor_pos's time grid")
    n = raw["cursor_pos"][1].shape[0]
    observed = np.clip(observed, start, start + n / RATE_HZ)
    j0 = int(np.ceil(round((observed[0, 0] - start) * RATE_HZ, 6)))
    j1 = int(np.floor(round((observed[-1, 1] - start) * RATE_HZ, 6)))
    idx = np.arange(j0, j1, STEP)  # 1 kHz samples kept: one every 4 ms
    if idx.size < 2:
        raise _Bad(f"observation intervals {observed.tolist()} hold fewer than two 4 ms samples")
    t = start + idx / RATE_HZ
    seen = _inside(t, observed)
    cursor, target = (_kinematic(raw[k][1][idx], k, t, seen) for k in KINEMATICS)
    names, trains, channel, row = _units(nwb, t[0], t[-1] + SAMPLE_S)
    gaps = np.column_stack([observed[:-1, 1], observed[1:, 0]])  # (G, 2) unobserved [s, s)
    return Reaching(t, cursor, target, names, trains, channel, row, gaps[gaps[:, 1] > gaps[:, 0]])


def _subject(nwb: NWBFile) -> str:
    subject = nwb.subject.subject_id if nwb.subject is not None else None
    if not subject or not SESSION_ID.fullmatch(str(nwb.session_id or "")):
        raise _Bad(f"no subject_id and session_id like 20170202_02 (subject {subject!r}, "
                   f"session_id {nwb.session_id!r}): not an NLB MC_RTT file")  # fmt: skip
    return str(subject)


def _observed(nwb: NWBFile) -> np.ndarray:
    """(I, 2) observation intervals [start, stop) s, sorted; the first unit's (all share them)."""
    if "obs_intervals" not in nwb.units.colnames or len(nwb.units) == 0:
        raise _Bad("the units table has no units or no obs_intervals column")
    iv = np.asarray(nwb.units["obs_intervals"][0], dtype=np.float64).reshape(-1, 2)
    if iv.size == 0 or not np.all(np.isfinite(iv)) or np.any(iv[:, 1] <= iv[:, 0]):
        raise _Bad(f"obs_intervals of unit 0 are not intervals [start, stop): {iv.tolist()}")
    iv = iv[np.argsort(iv[:, 0])]
    if np.any(iv[1:, 0] < iv[:-1, 1]):
        raise _Bad("obs_intervals overlap")
    return iv


def _series(nwb: NWBFile, name: str) -> tuple[float, np.ndarray]:
    """(start s, (N, 2) values) of behaviour series `name` on the 1 kHz grid."""
    if "behavior" not in nwb.processing:
        raise _Bad("no processing/behavior: the NLB test file holds no behaviour (held "
                   "out); use the train file " + TRAIN_FILE.format(subject="Indy"))  # fmt: skip
    module = nwb.processing["behavior"]
    if name not in module.data_interfaces:
        raise _Bad(f"no processing/behavior/{name}")
    ts = module[name]
    if ts.timestamps is not None:
        stamps = np.asarray(ts.timestamps[()], dtype=np.float64)
        step = np.diff(stamps)
        if stamps.size < 2 or np.any(np.abs(step - 1 / RATE_HZ) > 1e-6):
            raise _Bad(f"processing/behavior/{name} timestamps are not a 1 kHz grid")
        start = float(stamps[0])
    elif ts.rate is None or abs(float(ts.rate) - RATE_HZ) > 1e-9:
        raise _Bad(f"processing/behavior/{name} is sampled at {ts.rate} Hz, expected 1000 Hz")
    else:
        start = float(ts.starting_time or 0.0)
    data = np.asarray(ts.data[()], dtype=np.float64)
    if data.ndim != 2 or data.shape[1] < 2:
        raise _Bad(f"processing/behavior/{name} has shape {data.shape}, expected (N, 2)")
    return start, data[:, :2]


def _inside(t: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    """(T,) True where `t` lies in one of the [start, stop) `intervals`."""
    k = np.searchsorted(intervals[:, 0], t, side="right") - 1
    return (k >= 0) & (t < intervals[np.maximum(k, 0), 1])


def _kinematic(v: np.ndarray, name: str, t: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """(T, 2) checked values; across unobserved samples, linear between observed ones."""
    bad = seen & ~np.isfinite(v).all(axis=1)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise _Bad(f"{name} has NaN or infinite values inside an observation interval "
                   f"(first at {t[k]:.3f} s)")  # fmt: skip
    out = v.copy()
    for axis in range(2):
        out[~seen, axis] = np.interp(t[~seen], t[seen], v[seen, axis])
    return out


def _units(
    nwb: NWBFile, lo: float, hi: float
) -> tuple[list[str], list[np.ndarray], np.ndarray, np.ndarray]:
    """Channel names, spike trains, channel index and row (1.. per channel) of each unit."""
    u = nwb.units
    if "electrodes" not in u.colnames:
        raise _Bad("the units table has no electrodes column")
    ends = np.asarray(u["electrodes"].data[:])  # (U,) end of each unit's electrode list
    if not np.array_equal(np.diff(np.concatenate([[0], ends])), np.ones(len(u), dtype=int)):
        raise _Bad("every unit needs exactly one electrode")
    electrode = np.asarray(u["electrodes"].target.data[:], dtype=np.int64)  # (U,) table row
    locations = [str(x) for x in nwb.electrodes["location"].data[:]]
    area = ["S1" if "S1" in loc else "M1" for loc in locations]
    names = [f"{area[e]} {e + 1:03d}" for e in range(len(locations))]
    trains: list[np.ndarray] = []
    row = np.zeros(len(u), dtype=np.int64)
    for i in range(len(u)):
        row[i] = 1 + int(np.count_nonzero(electrode[:i] == electrode[i]))
        s = np.asarray(u["spike_times"][i], dtype=np.float64)
        if not np.isfinite(s).all():
            raise _Bad(f"unit {i} has NaN or infinite spike times")
        if s.size > 1 and np.any(np.diff(s) < 0):
            raise _Bad(
                f"unit {i} spike times are unsorted (at spike {np.argmax(np.diff(s) < 0) + 1})"
            )
        if s.size and not (s[0] >= lo and s[-1] < hi):
            raise _Bad(f"unit {i} has spike times outside the observed range: "
                       f"[{s[0]}, {s[-1]}] s, recording [{lo}, {hi}) s")  # fmt: skip
        trains.append(s)
    # the record's order: sorted units by (row, channel), as `npdecode.mat.read` yields them
    order = np.lexsort((electrode, row))
    return names, [trains[i] for i in order], electrode[order], row[order]


def write_nlb(
    path: str | Path,
    s: MatSession,
    session: str,
    gaps: np.ndarray | None = None,
) -> None:
    """Write `s` (the sorted units of a `.mat` session: rows 1..) in the MC_RTT layout.

    The 250 Hz behaviour is upsampled to 1 kHz by linear interpolation (as NLB stored
    it), so every fourth sample is the original; `gaps` (G, 2) [start, stop) s leave the
    recording as several observation intervals with NaN behaviour between them and no
    spikes there. Atomic: a failed write leaves nothing at `path`.
    """
    monkey, date, number = session.split("_")
    n = len(s.t) * STEP  # the last 4 ms sample spans [t[-1], t[-1] + 4 ms), as in the .mat
    pos = np.arange(n) / STEP  # (n,) position on the 4 ms grid (held after the last sample)
    up = {k: np.column_stack([np.interp(pos, np.arange(len(s.t)), a[:, j])
                              for j in range(a.shape[1])])
          for k, a in (("cursor_pos", s.cursor_pos), ("target_pos", s.target_pos),
                       ("finger_pos", s.finger_pos))}  # fmt: skip
    t1k = s.t[0] + np.arange(n) / RATE_HZ
    stop = t1k[-1] + 1 / RATE_HZ
    gaps = np.zeros((0, 2)) if gaps is None else np.asarray(gaps, dtype=np.float64)
    edges = np.concatenate([[s.t[0]], gaps.reshape(-1), [stop]]).reshape(-1, 2)  # (I, 2)
    hidden = ~_inside(t1k, edges)
    for a in up.values():
        a[hidden] = np.nan
    start = dt.datetime.strptime(date, "%Y%m%d").replace(tzinfo=dt.timezone(dt.timedelta(hours=-8)))
    nwb = NWBFile(
        session_description=f"Data from monkey {monkey.title()} performing self-paced "
        "random target reaching task (an npdecode twin in the NLB MC_RTT layout)",
        identifier=f"npdecode-{session}",
        session_start_time=start,
        session_id=f"{date}_{number}",
        subject=Subject(subject_id=monkey.title(), species="Macaca mulatta"),
    )
    _write_units(nwb, s, edges)
    behavior = nwb.create_processing_module("behavior", "Processed behavioral data")
    for k, a in up.items():
        behavior.add(SpatialSeries(name=k, data=a, reference_frame="screen", unit="mm",
                                   rate=RATE_HZ, starting_time=float(s.t[0])))  # fmt: skip
    vel = np.gradient(up["finger_pos"][:, :2], 1 / RATE_HZ, axis=0)
    behavior.add(TimeSeries(name="finger_vel", data=vel, unit="mm/s", rate=RATE_HZ,
                            starting_time=float(s.t[0])))  # fmt: skip
    nwb.add_trial_column("split", "Trial split for the Neural Latents Benchmark")
    for a in np.arange(s.t[0], stop - 0.6, 0.6):
        nwb.add_trial(start_time=float(a), stop_time=float(a + 0.6), split="train")
    with atomic_path(path) as tmp, NWBHDF5IO(str(tmp), "w") as io:
        io.write(nwb)


def _write_units(nwb: NWBFile, s: MatSession, edges: np.ndarray) -> None:
    device = nwb.create_device("electrode_array", description="96-electrode Utah array")
    group = nwb.create_electrode_group("electrode_group", description="Implanted electrodes "
                                       "in Utah Array", location="M1", device=device)  # fmt: skip
    for name in s.chan_names:
        nwb.add_electrode(group=group, location=name.split(" ")[0], x=0.0, y=0.0, z=0.0,
                          imp=float("nan"), filtering="")  # fmt: skip
    nwb.add_unit_column("heldout", "Whether the unit is held out in the test data")
    for row in s.spikes[1:]:  # sorted units only, in the record's (row, channel) order
        for channel, train in enumerate(row):
            if train is not None:
                kept = train[_inside(train, edges)]
                nwb.add_unit(spike_times=kept, obs_intervals=edges, electrodes=[channel],
                             heldout=False)  # fmt: skip
