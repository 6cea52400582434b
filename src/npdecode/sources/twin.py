"""The synthetic twin of the Allen natural-scenes data set (`fetch.synthetic.preset: allen`).

Session ids 1-32 mirror the 32 real `brain_observatory_1.1` sessions, in the order of
`allen_vc_sessions.csv` (`npdecode.sources.allen_vc`): one synthetic mouse each, with that
session's probes, channel count, structures and area mix, and an unfiltered unit count
whose quality metrics make AllenSDK's default filters keep about the real filtered count.
The NWB says which real session it mirrors; its identifier is the twin id, its specimen
id is no real mouse's (TWIN_SPECIMEN_BASE + id).

Units (per-area settings in GROUPS, with the published figures they follow in the notes
of notes/twin.md):
- baseline rates log-normal by area (thalamus fastest, hippocampus slowest), a fast-spiking
  minority in cortex;
- a responsive share per area (most of LGd and VISp, a minority of hippocampus); a
  responsive unit's rate to image c is `baseline + A f_c shape_c(t)` with log-normal
  image tuning f_c = exp(beta z_c - beta^2 / 2), z_c a projection of the image's hidden
  features (shared by every mouse: they are the images), so beta sets lifetime
  sparseness; onset latency by area along Siegle et al.'s hierarchy (LGd first, VISam
  last), a transient + sustained time course whose latency and mix shift a little with the
  image (timing carries some information beyond counts), and a few suppressed units;
- trial-to-trial variability beyond Poisson: a gain shared by all units per presentation
  (log-normal, a slow AR(1) part for arousal plus a fast part), slow multiplicative drift
  of each unit over the ~2.7 h session, and perceptual lapses: on a fraction of
  presentations the mouse's visual system responds as to another, similar image (or to
  the gray screen), which limits the information any decoder can reach however many
  units it reads (the ideal observer stays below 1);
- quality metrics that are caused, not painted: a unit that fails AllenSDK's default
  filters misses spikes under the detection threshold (amplitude_cutoff: its spikes are
  thinned and its amplitudes truncated), is contaminated by untuned spikes of neighbours
  (isi_violations), or drifts off the probe for part of the session (presence_ratio, from
  its own spikes), and its tuning is weaker: failing units are more often noise.

Per-mouse parameters (MouseParams: responsiveness, lapse rate, gain and drift size) make
decodability differ between twins beyond their unit counts. The truth (rates per image and
5 ms step, each unit's gain per presentation, the lapse kernel) goes to truth.npz, so
`npdecode.reference.ideal_observer` is exact for this generative model.

Spikes are drawn by `npdecode.sources.spiketrains` (exact inhomogeneous Poisson, no
per-unit loop), counts first (the NWB index) and times chunk by chunk while the NWB is
written (`npdecode.nwb.write.SpikeStream`), so a 2,500-unit twin never holds its spikes
twice.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from npdecode.errors import ParamsError
from npdecode.formats.files import atomic_path, write_json
from npdecode.formats.tables import write_tables
from npdecode.formats.truth import SyntheticTruth, write_truth
from npdecode.nwb.read import metadata_tables
from npdecode.nwb.write import SessionRecord, SpikeStream, write_session_nwb
from npdecode.params import SyntheticParams
from npdecode.paths import Layout
from npdecode.sources import spiketrains
from npdecode.sources.allen_vc import (
    HIPPOCAMPUS,
    MIDBRAIN,
    THALAMUS,
    VISUAL_AREAS,
    VISUAL_OTHER,
    AllenSession,
    twin_of,
)
from npdecode.sources.synthetic import (
    NOISE_RATE_HZ,
    PRESENTATION_S,
    STEP_S,
    make_invalid_times,
)

log = logging.getLogger(__name__)

TWIN_SPECIMEN_BASE = 990_000_000  # twin specimens: far above the real ones (699M-777M)
SESSION_S = 9600.0  # a brain_observatory_1.1 session: ~2.7 h of stimuli
N_FEATURES = 24  # hidden features per image (the images' own, shared by all mice)
PRESENCE_BINS = 100  # AllenSDK's presence ratio: share of 100 bins with spikes (max 100/101)
CHUNK_UNITS = 32  # units whose spikes are drawn at once (memory ~ CHUNK_UNITS * 20 MB)
# AllenSDK's quickstart keeps 93 VISp units of 791319847 after its default filters; the CSV
# (one published analysis, other filters) says 125. A twin's default-QC count in each of
# the eight visual areas is the CSV count times this ratio (README: "The Allen twin").
AREA_QC_RATIO = 93 / 125
# Unfiltered unit counts known for real sessions (issue 12); the others draw 2,000-3,000.
KNOWN_UNFILTERED = {715093703: 2073, 732592105: 2717}
PROBE_NAMES = ("probeA", "probeB", "probeC", "probeD", "probeE", "probeF")
# Allen's probe targets: the cortical area each probe letter aims at
PROBE_TARGETS = ("VISam", "VISpm", "VISp", "VISl", "VISal", "VISrl")
AMPLITUDE_SCALE = 1.85  # global evoked-response scale, calibrated on the quickstart anchor


@dataclass(frozen=True)
class GroupParams:
    """Response and recording settings of one area (or group of structures).

    baseline_hz / baseline_sd: median and log-sd of the spontaneous rate; responsive: share
    of units driven by the images; latency_ms: response onset; beta: log-sd of the tuning
    across images (lifetime sparseness); amp: evoked scale; sustained: mean sustained share
    of the response; decay_ms: transient decay; depth: rank along the probe, tip = 0.
    """

    baseline_hz: float
    baseline_sd: float
    responsive: float
    latency_ms: float
    beta: float
    amp: float
    sustained: float
    decay_ms: float
    depth: int


def _visual(score: float, responsive: float, beta: float, amp: float) -> GroupParams:
    """A cortical visual area at Siegle et al. 2021's hierarchy score: later, slower, sparser."""
    return GroupParams(
        baseline_hz=2.0,
        baseline_sd=1.0,
        responsive=responsive,
        latency_ms=55.0 + 35.0 * score,
        beta=beta,
        amp=amp,
        sustained=0.3,
        decay_ms=30.0 + 30.0 * (score + 0.5),
        depth=4,
    )


GROUPS: dict[str, GroupParams] = {
    "LGd": GroupParams(8.0, 0.7, 0.85, 37.0, 0.65, 1.3, 0.5, 25.0, 1),
    "LP": GroupParams(6.0, 0.8, 0.60, 59.0, 0.8, 0.9, 0.4, 45.0, 1),
    "VISp": _visual(-0.357, 0.75, 1.0, 1.0),
    "VISl": _visual(-0.093, 0.70, 1.05, 0.9),
    "VISrl": _visual(-0.059, 0.60, 1.05, 0.8),
    "VISal": _visual(0.152, 0.60, 1.1, 0.8),
    "VISpm": _visual(0.327, 0.55, 1.2, 0.75),
    "VISam": _visual(0.441, 0.50, 1.2, 0.7),
    "visual_other": _visual(0.2, 0.50, 1.1, 0.7),
    "thalamus": GroupParams(6.0, 0.9, 0.30, 60.0, 0.7, 0.6, 0.4, 45.0, 1),
    "midbrain": GroupParams(5.0, 1.0, 0.35, 50.0, 0.7, 0.7, 0.4, 40.0, 0),
    "hippocampus": GroupParams(1.2, 1.1, 0.10, 90.0, 0.8, 0.4, 0.5, 60.0, 2),
    "grey": GroupParams(2.5, 1.0, 0.30, 65.0, 0.9, 0.6, 0.4, 45.0, 5),
    "other": GroupParams(2.0, 1.0, 0.15, 80.0, 0.8, 0.4, 0.4, 50.0, 3),
}
# weight of each group when the QC-passing units outside the eight areas are shared out
OTHER_WEIGHTS = {"hippocampus": 3.0, "thalamus": 1.0, "midbrain": 1.0, "grey": 2.0,
                 "visual_other": 1.5, "other": 0.5}  # fmt: skip


def group_of(structure: str) -> str:
    """GROUPS key of a structure acronym."""
    if structure in GROUPS and structure not in ("grey", "other"):
        return structure
    for name, members in (
        ("hippocampus", HIPPOCAMPUS),
        ("thalamus", THALAMUS),
        ("midbrain", MIDBRAIN),
        ("visual_other", VISUAL_OTHER),
    ):
        if structure in members:
            return name
    return "grey" if structure == "grey" else "other"


# --- the mouse -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MouseParams:
    """What makes one twin's mouse (and recording) unlike the others.

    responsiveness: multiplies every evoked response; lapse: share of presentations seen
    as another image; gain_sd: sd of the log of the shared gain; gain_slow: its share of
    variance that is slow (AR(1), ~30 s); drift_sd: sd of each unit's slow log-rate drift;
    n_units: unfiltered units (2,000-3,000 at full size); coverage: share of units whose
    receptive field lies on the monitor (probes that miss the retinotopic centre record
    units that no image drives; Siegle et al. select units with on-screen fields).
    """

    responsiveness: float
    lapse: float
    gain_sd: float
    gain_slow: float
    drift_sd: float
    n_units: int
    coverage: float


def mouse_rng(params: SyntheticParams, twin_id: int, stream: int) -> np.random.Generator:
    """One seeded stream per (seed, twin, purpose): reruns repeat, twins differ."""
    return np.random.default_rng([params.seed, 7, twin_id, stream])


def draw_mouse(params: SyntheticParams, real: AllenSession) -> MouseParams:
    """The twin's per-mouse parameters (its unit count from the issue where known)."""
    rng = mouse_rng(params, real.twin_id, 0)
    n_units = KNOWN_UNFILTERED.get(real.session_id, int(rng.integers(2000, 3001)))
    return MouseParams(
        responsiveness=float(np.exp(rng.normal(0.0, 0.7))),
        lapse=float(rng.uniform(0.02, 0.3)),
        gain_sd=float(rng.uniform(0.15, 0.4)),
        gain_slow=float(rng.uniform(0.4, 0.8)),
        drift_sd=float(rng.uniform(0.1, 0.35)),
        n_units=max(1, round(n_units * params.unit_scale)),
        coverage=float(1.0 - 0.65 * rng.uniform() ** 2),  # most mice well centred, a few not
    )


# --- which units, where --------------------------------------------------------------------


def _share(total: int, weights: np.ndarray) -> np.ndarray:
    """Split `total` into integers proportional to `weights` (largest remainder)."""
    weights = np.asarray(weights, dtype=np.float64)
    if total <= 0 or weights.sum() <= 0:
        return np.zeros(len(weights), dtype=np.int64)
    exact = total * weights / weights.sum()
    out = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - out), kind="stable")
    out[order[: total - out.sum()]] += 1
    return out


def unit_plan(real: AllenSession, mouse: MouseParams, unit_scale: float) -> pd.DataFrame:
    """Units per structure that pass / fail the default filters: one row per structure.

    The eight visual areas get AREA_QC_RATIO x their CSV count of passing units; the
    rest of the session's passing units go to its other structures by OTHER_WEIGHTS;
    failing units (unfiltered minus passing) are shared in proportion to passing ones.
    """
    n_pass = round(real.units_passing_default_qc * unit_scale)
    visual = {a: real.area_units[a] * AREA_QC_RATIO * unit_scale for a in VISUAL_AREAS}
    visual = {a: v for a, v in visual.items() if v > 0}
    counts = dict(
        zip(
            visual,
            _share(round(sum(visual.values())), np.array(list(visual.values()))),
            strict=True,
        )
    )
    others = [s for s in dict.fromkeys(real.structures) if s not in VISUAL_AREAS]
    others = others or ["grey"]
    weights = np.array([OTHER_WEIGHTS[group_of(s)] for s in others])
    rest = _share(max(n_pass - sum(counts.values()), 0), weights)
    counts.update(zip(others, rest, strict=True))
    plan = pd.DataFrame({"structure": list(counts), "n_pass": list(counts.values())})
    plan["group"] = plan["structure"].map(group_of)
    n_fail = max(mouse.n_units - int(plan["n_pass"].sum()), 0)
    plan["n_fail"] = _share(n_fail, plan["n_pass"].to_numpy() + 1e-9)
    return plan[(plan["n_pass"] + plan["n_fail"]) > 0].reset_index(drop=True)


def make_probes(twin_id: int, n_probes: int) -> pd.DataFrame:
    """The session's probes, A onwards, with ids distinct per twin."""
    names = list(PROBE_NAMES[:n_probes])
    return pd.DataFrame(
        {
            "id": twin_id * 100 + np.arange(n_probes),
            "name": names,
            "sampling_rate": np.full(n_probes, 30000.0),
            "lfp_sampling_rate": np.full(n_probes, 2500.0),
            "has_lfp_data": np.ones(n_probes, bool),
            "location": [f"See electrode locations ({t})" for t in PROBE_TARGETS[:n_probes]],
        }
    )


def probe_of_structures(plan: pd.DataFrame, n_probes: int) -> dict[str, int]:
    """Which probe records each structure: a cortical area on the probe aimed at it (or the
    next free one), every other structure spread over the probes, biggest first."""
    out: dict[str, int] = {}
    cortical = [a for a in PROBE_TARGETS if a in set(plan["structure"])]
    targets = [PROBE_TARGETS.index(a) for a in cortical]
    free = [k for k in range(n_probes)]
    for area, target in zip(cortical, targets, strict=True):
        k = target if target in free else free[0] if free else target % n_probes
        out[area] = k
        if k in free:
            free.remove(k)
    rest = plan[~plan["structure"].isin(out)].copy()
    rest["n"] = rest["n_pass"] + rest["n_fail"]
    for i, s in enumerate(rest.sort_values("n", ascending=False, kind="stable")["structure"]):
        out[str(s)] = i % n_probes
    return out


def make_channels(
    twin_id: int,
    probes: pd.DataFrame,
    plan: pd.DataFrame,
    n_channels: int,
    rng: np.random.Generator,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Channels of every probe, banded by structure from the tip (deep groups first).

    Each probe keeps n_channels / n_probes of its 384 sites (Allen drops the reference and
    out-of-brain ones); each structure on it gets a contiguous band sized by its units.
    """
    n_probes = len(probes)
    where = probe_of_structures(plan, n_probes)
    per_probe = _share(n_channels, np.ones(n_probes))
    frames = []
    for k, probe in enumerate(probes.itertuples()):
        sites = np.setdiff1d(np.arange(384), [191])[: per_probe[k]]  # 191: reference
        on = plan[plan["structure"].map(where) == k].copy()
        on["depth"] = on["group"].map(lambda g: GROUPS[g].depth)
        on = on.sort_values(["depth", "structure"], kind="stable")
        sizes = _share(len(sites), (on["n_pass"] + on["n_fail"]).to_numpy() + 4.0)
        location = np.full(len(sites), "grey", dtype=object)
        location[: sizes.sum()] = np.repeat(on["structure"].to_numpy(dtype=object), sizes)
        vertical = 20.0 + (sites // 2) * 20.0
        entry = np.array([8000.0 + 300 * k, 400.0, 6500.0 + 250 * k]) + rng.normal(0, 50, 3)
        depth = 3840.0 - vertical
        frames.append(
            pd.DataFrame(
                {
                    "id": probe.id * 1000 + sites,
                    "probe_id": probe.id,
                    "probe_name": probe.name,
                    "probe_channel_number": sites,
                    "probe_vertical_position": vertical,
                    "probe_horizontal_position": np.array([43.0, 11.0, 59.0, 27.0])[sites % 4],
                    "anterior_posterior_ccf_coordinate": entry[0] + 0.1 * depth,
                    "dorsal_ventral_ccf_coordinate": entry[1] + 0.99 * depth,
                    "left_right_ccf_coordinate": entry[2] + 0.05 * depth,
                    "location": location,
                    "valid_data": np.ones(len(sites), bool),
                }
            )
        )
    return pd.concat(frames, ignore_index=True), where


def place_units(
    twin_id: int, plan: pd.DataFrame, channels: pd.DataFrame, rng: np.random.Generator
) -> pd.DataFrame:
    """One row per unit: its structure, group, designed QC outcome and peak channel.

    Rows run probe by probe from the tip, as Allen's units tables do.
    """
    structure = np.repeat(plan["structure"].to_numpy(dtype=object), plan["n_pass"] + plan["n_fail"])
    passes = np.concatenate(
        [
            np.r_[np.ones(p, bool), np.zeros(f, bool)]
            for p, f in zip(plan["n_pass"], plan["n_fail"], strict=True)
        ]
    )
    by_structure = channels.groupby("location").indices
    ids = channels["id"].to_numpy()
    peak = np.array([ids[rng.choice(by_structure[s])] for s in structure], dtype=np.int64)
    order = np.lexsort((rng.random(len(peak)), peak))
    n = len(peak)
    return pd.DataFrame(
        {
            "id": twin_id * 100000 + np.arange(n, dtype=np.int64),
            "peak_channel_id": peak[order],
            "local_index": np.arange(n),
            "cluster_id": np.arange(n) + 3,
            "structure": structure[order],
            "group": pd.Series(structure[order]).map(group_of).to_numpy(dtype=object),
            "passes_qc": passes[order],
        }
    )


# --- unit properties and quality metrics ---------------------------------------------------


@dataclass(frozen=True)
class UnitModel:
    """Per-unit generative settings, arrays of length U in units-table order.

    keep: share of the unit's spikes above the detection threshold (1 - amplitude cutoff);
    contamination: share of its recorded spikes that are a neighbour's untuned spikes;
    absent: (U, 2) start and stop (s) of the part of the session where it has drifted off
    the probe (start == stop: always present).
    """

    baseline: np.ndarray
    fast: np.ndarray
    responsive: np.ndarray
    amplitude: np.ndarray
    beta: np.ndarray
    latency: np.ndarray
    sustained: np.ndarray
    decay: np.ndarray
    keep: np.ndarray
    contamination: np.ndarray
    isi_violations: np.ndarray
    absent: np.ndarray


def _by_group(units: pd.DataFrame, field: str) -> np.ndarray:
    lookup = {k: getattr(v, field) for k, v in GROUPS.items()}
    return units["group"].map(lookup).to_numpy(dtype=np.float64)


def unit_model(units: pd.DataFrame, mouse: MouseParams, rng: np.random.Generator) -> UnitModel:
    """Draw every unit's rates, tuning settings and recording defects.

    Units designed to pass the default filters get small defects; each of the others gets
    at least one out of bounds (missing spikes, contamination, partial presence) and
    weaker, rarer responses: the filters remove mostly noise, as on real probes.
    """
    n = len(units)
    passes = units["passes_qc"].to_numpy(bool)
    group = units["group"].to_numpy()
    cortical = np.isin(group, [*VISUAL_AREAS[1:4], *VISUAL_AREAS[5:], "visual_other"])
    fast = cortical & (rng.random(n) < 0.2)  # fast-spiking interneurons
    baseline = np.exp(
        np.log(_by_group(units, "baseline_hz"))
        + _by_group(units, "baseline_sd") * rng.normal(0, 1, n)
    )
    baseline = np.clip(np.where(fast, 3.0 * baseline, baseline), np.where(passes, 0.15, 0.01), 50.0)

    weak = np.where(passes, 1.0, 0.4)
    responsive = rng.random(n) < _by_group(units, "responsive") * weak * mouse.coverage
    drive = 4.0 * np.sqrt(np.maximum(baseline, 0.5)) * _by_group(units, "amp") * AMPLITUDE_SCALE
    amplitude = mouse.responsiveness * drive * np.exp(rng.normal(0.0, 0.5, n)) * weak * responsive
    suppressed = responsive & cortical & (rng.random(n) < 0.12)
    amplitude = np.where(suppressed, -np.minimum(amplitude, 0.8 * baseline), amplitude)

    # recording defects: the filters a failing unit fails (at least one of the three)
    mode = rng.random((n, 3)) < np.array([0.55, 0.45, 0.15])  # cutoff, contamination, presence
    mode[~passes & ~mode.any(axis=1), 0] = True
    mode &= ~passes[:, None]
    cutoff = np.where(mode[:, 0], rng.uniform(0.11, 0.8, n), 0.1 * rng.beta(0.6, 4.0, n))
    isi = np.where(
        mode[:, 1],
        0.5 + rng.lognormal(np.log(0.6), 0.9, n),
        np.minimum(rng.exponential(0.08, n), 0.49),
    )
    # Hill et al.'s ISI-violation rate of a train with contaminating share c is 1 - (1 - c)^2
    contamination = np.minimum(0.5, 1.0 - np.sqrt(np.clip(1.0 - isi, 0.0, 1.0)))
    share = rng.uniform(0.08, 0.5, n)
    late = rng.random(n) < 0.5  # drifts onto the probe late, or off it early
    absent = np.stack(
        [
            np.where(late, 0.0, SESSION_S * (1 - share)),
            np.where(late, SESSION_S * share, SESSION_S),
        ],
        axis=1,
    )
    absent[~mode[:, 2]] = 0.0
    return UnitModel(
        baseline=baseline,
        fast=fast,
        responsive=responsive,
        amplitude=amplitude,
        beta=_by_group(units, "beta") * np.exp(rng.normal(0.0, 0.2, n)),
        latency=(_by_group(units, "latency_ms") + rng.normal(0.0, 6.0, n)).clip(20.0, 160.0) / 1e3,
        sustained=np.clip(_by_group(units, "sustained") + rng.normal(0.0, 0.15, n), 0.05, 0.95),
        decay=_by_group(units, "decay_ms") * np.exp(rng.normal(0.0, 0.25, n)) / 1e3,
        keep=1.0 - cutoff,
        contamination=contamination,
        isi_violations=isi,
        absent=absent,
    )


# --- responses -----------------------------------------------------------------------------


def image_features(params: SyntheticParams) -> np.ndarray:
    """(C, N_FEATURES) hidden features of each class, row 0 (the blank) zero.

    Seeded by `seed` alone: the images are the same for every twin, as in the real set.
    """
    features = np.random.default_rng([params.seed, 8]).normal(
        0.0, 1.0, (params.n_images + 1, N_FEATURES)
    )
    features[0] = 0.0
    return features


def response_table(
    model: UnitModel, features: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(C, S, U) float32 recorded rate (Hz) per class and 5 ms step, and (U,) rate between
    presentations, both after the unit's recording defects (missed and foreign spikes)."""
    n = len(model.baseline)
    n_classes = len(features)
    n_steps = round(PRESENTATION_S / STEP_S)
    t = (np.arange(n_steps) + 0.5) * STEP_S  # (S,) step centres
    directions = rng.normal(0.0, 1.0, (3, n, N_FEATURES))
    directions /= np.linalg.norm(directions, axis=2, keepdims=True)
    z, v, x = directions @ features.T  # (U, C) each: tuning, latency and mix projections
    rates = np.empty((n_classes, n_steps, n), dtype=np.float32)
    for chunk in np.array_split(np.arange(n), max(1, n // 256)):
        beta = model.beta[chunk, None]
        f = np.exp(beta * z[chunk] - beta**2 / 2)  # (u, C) log-normal tuning, mean ~1
        f[:, 0] = 0.0  # the blank evokes nothing
        onset = model.latency[chunk, None] + 0.004 * v[chunk]  # (u, C) image shifts onset
        logit = np.log(model.sustained[chunk] / (1 - model.sustained[chunk]))[:, None]
        mix = 1.0 / (1.0 + np.exp(-(logit + 0.7 * x[chunk])))  # (u, C) sustained share
        dt = t[None, None, :] - onset[:, :, None]  # (u, C, S) time since onset
        tau = model.decay[chunk, None, None] / 2
        on = np.maximum(dt, 0.0)
        transient = (on / tau) * np.exp(1 - on / tau)  # alpha function, peak 1 at tau
        plateau = 1.0 - np.exp(-on / 0.015)
        shape = (1 - mix[..., None]) * transient + mix[..., None] * plateau
        neuron = (
            model.baseline[chunk, None, None]
            + (model.amplitude[chunk, None] * f)[..., None] * shape
        )
        neuron = np.maximum(neuron, 0.02 * model.baseline[chunk, None, None])  # (u, C, S)
        keep = model.keep[chunk, None, None]
        c = model.contamination[chunk, None, None]
        foreign = c / (1 - c) * keep * neuron[:, 1:].mean(axis=(1, 2), keepdims=True)
        rates[:, :, chunk] = (keep * neuron + foreign).transpose(1, 2, 0)  # -> (C, S, u)
    return rates, rates[0].mean(axis=0).astype(np.float64)


# --- the session's time line -----------------------------------------------------------------


def schedule(
    params: SyntheticParams, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Natural-scenes presentations in `n_blocks` blocks spread over the session.

    Every class (images and blank) gets `n_repeats` presentations, shuffled within blocks;
    presentations are 250 ms and back to back within a block; the time between blocks
    (other stimuli in a real session) is written as `spontaneous` intervals.
    """
    n_classes = params.n_images + 1
    per_block = np.array_split(np.arange(params.n_repeats), params.n_blocks)
    rows, gaps, t = [], [], 0.0
    for b, reps in enumerate(per_block):
        start = (
            np.round(SESSION_S * (b + 0.75) / (params.n_blocks + 0.5) / PRESENTATION_S)
            * PRESENTATION_S
        )
        order = rng.permutation(np.repeat(np.arange(n_classes), len(reps)))
        starts = start + PRESENTATION_S * np.arange(len(order))
        if start < t or starts[-1] + PRESENTATION_S > SESSION_S - 60.0:
            raise ParamsError(
                f"fetch.synthetic: {params.n_repeats} repeats of {n_classes} classes in "
                f"{params.n_blocks} blocks do not fit a twin's {SESSION_S:.0f} s session"
            )
        gaps.append((t, float(start)))
        rows.append(
            pd.DataFrame({"start_time": starts, "class": order, "stimulus_block": 2 + 3 * b})
        )
        t = float(starts[-1] + PRESENTATION_S)
    gaps.append((t, SESSION_S))
    table = pd.concat(rows, ignore_index=True)
    table["stop_time"] = table["start_time"] + PRESENTATION_S
    table["frame"] = (table["class"] - 1).astype(np.float64)  # class 0 is the blank, frame -1
    table["stimulus_name"] = "natural_scenes"
    table["stimulus_index"] = 5
    spont = pd.DataFrame(gaps, columns=["start_time", "stop_time"])
    spont["stimulus_name"] = "spontaneous"
    spont["stimulus_block"] = np.arange(len(gaps)) * 3 + 1
    spont["stimulus_index"] = 0
    columns = [
        "start_time",
        "stop_time",
        "stimulus_name",
        "stimulus_block",
        "stimulus_index",
        "frame",
    ]
    return table[columns + ["class"]], spont


def shared_gain(mouse: MouseParams, blocks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(P,) gain shared by every unit on each presentation: log-normal, mean 1, sd of log
    `gain_sd`; a `gain_slow` share of its variance is an AR(1) with a 30 s time scale
    (arousal, running), restarted in each block; the rest is independent per presentation."""
    a = np.exp(-PRESENTATION_S / 30.0)
    slow_sd = mouse.gain_sd * np.sqrt(mouse.gain_slow)
    fast_sd = mouse.gain_sd * np.sqrt(1 - mouse.gain_slow)
    innovation = rng.normal(0.0, slow_sd * np.sqrt(1 - a**2), len(blocks))
    slow = np.empty(len(blocks))
    for i in range(len(blocks)):  # a recursion over presentations (5,950), not units
        fresh = i == 0 or blocks[i] != blocks[i - 1]
        slow[i] = rng.normal(0.0, slow_sd) if fresh else a * slow[i - 1] + innovation[i]
    return np.exp(-(mouse.gain_sd**2) / 2 + slow + rng.normal(0.0, fast_sd, len(blocks)))


def lapse_kernel(features: np.ndarray, lapse: float) -> np.ndarray:
    """(C, C) P(the visual system responds as to class k | class c shown).

    An image is seen as itself with probability 1 - lapse; a lapse is the gray screen
    (eyes closed or away) 30 % of the time, else an image near it in feature space. The
    blank is always the blank.
    """
    n = len(features)
    d2 = ((features[1:, None, :] - features[None, 1:, :]) ** 2).sum(axis=2)  # (I, I)
    np.fill_diagonal(d2, np.inf)
    scale = np.median(d2[np.isfinite(d2)]) / 8.0
    near = np.exp(-(d2 - d2.min(axis=1, keepdims=True)) / scale)
    near /= near.sum(axis=1, keepdims=True)
    kernel = np.zeros((n, n))
    kernel[0, 0] = 1.0
    kernel[1:, 0] = 0.3 * lapse
    kernel[1:, 1:] = 0.7 * lapse * near + (1 - lapse) * np.eye(n - 1)
    return kernel


def drift(
    model: UnitModel, mouse: MouseParams, times: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """(len(times), U) float32 multiplier of each unit's rate: slow log-normal drift (sd of
    log `drift_sd`, periods of 25 min to 5.5 h), zero where the unit is off the probe."""
    n = len(model.baseline)
    weights = rng.normal(0.0, 1.0, (3, n))
    periods = rng.uniform(1500.0, 20000.0, (3, n))
    phases = rng.uniform(0.0, 2 * np.pi, (3, n))
    norm = np.sqrt((weights**2).sum(axis=0) / 2)
    out = np.zeros((len(times), n), dtype=np.float32)
    for chunk in np.array_split(np.arange(len(times)), max(1, len(times) // 512)):
        wave = (
            np.cos(2 * np.pi * times[chunk, None, None] / periods + phases) * weights
        )  # (t, 3, U)
        log_m = mouse.drift_sd * wave.sum(axis=1) / norm - mouse.drift_sd**2 / 2
        gone = (times[chunk, None] >= model.absent[:, 0]) & (
            times[chunk, None] < model.absent[:, 1]
        )
        out[chunk] = np.where(gone, 0.0, np.exp(log_m))
    return out


@dataclass(frozen=True)
class Timeline:
    """The session cut into cells of constant rate: 5 ms steps inside presentations, pieces
    of at most 60 s between them, split at the presence-ratio bins.

    edges: (K+1,) s; ns_cells: (P*S,) cell index of each (presentation, step), row-major;
    gap_cells: (J,) cell index of each between-presentation piece; gap_mid: (J,) its
    middle; bins: (PRESENCE_BINS + 1,) cell-edge index of the presence bins; ns_bin: (P,)
    and gap_bin: (J,) the bin of each presentation and piece.
    """

    edges: np.ndarray
    ns_cells: np.ndarray
    gap_cells: np.ndarray
    gap_mid: np.ndarray
    bins: np.ndarray
    ns_bin: np.ndarray
    gap_bin: np.ndarray


def timeline(presentations: pd.DataFrame, spontaneous: pd.DataFrame) -> Timeline:
    """Cells and presence bins of a twin's session (see Timeline)."""
    n_steps = round(PRESENTATION_S / STEP_S)
    starts = presentations["start_time"].to_numpy()
    # presence bins: equal thirds of ... 100 equal bins, edges moved to presentation edges
    wanted = np.linspace(0.0, SESSION_S, PRESENCE_BINS + 1)
    runs, kinds = [], []  # per run of cells: edges (without the last), kind
    block_of = presentations["stimulus_block"].to_numpy()
    for i, (a, b) in enumerate(
        zip(spontaneous["start_time"], spontaneous["stop_time"], strict=True)
    ):
        cuts = wanted[(wanted > a) & (wanted < b)]
        pieces = [a]
        for lo, hi in zip(np.r_[a, cuts], np.r_[cuts, b], strict=True):
            k = max(1, int(np.ceil((hi - lo) / 60.0)))
            pieces.extend(np.linspace(lo, hi, k + 1)[1:])
        runs.append(np.asarray(pieces[:-1]))
        kinds.append(np.full(len(pieces) - 1, -1))
        if i < len(spontaneous) - 1:
            block = np.flatnonzero(block_of == np.unique(block_of)[i])
            t0 = starts[block[0]]
            runs.append(t0 + STEP_S * np.arange(len(block) * n_steps))
            kinds.append(np.repeat(block, n_steps))
    edges = np.r_[np.concatenate(runs), SESSION_S]
    kind = np.concatenate(kinds)
    ns_cells = np.flatnonzero(kind >= 0)  # time order = presentation-major, step-minor
    gap_cells = np.flatnonzero(kind < 0)
    # presence-bin edges: snapped to the nearest presentation (or piece) boundary
    boundary = np.flatnonzero(
        np.r_[True, (kind[1:] < 0) | (kind[:-1] < 0) | (kind[1:] != kind[:-1]), True]
    )
    bins = boundary[np.abs(edges[boundary][None, :] - wanted[:, None]).argmin(axis=1)]
    bins[0], bins[-1] = 0, len(kind)
    cell_bin = np.searchsorted(bins, np.arange(len(kind)), side="right") - 1
    return Timeline(
        edges=edges,
        ns_cells=ns_cells,
        gap_cells=gap_cells,
        gap_mid=(edges[gap_cells] + edges[gap_cells + 1]) / 2,
        bins=bins,
        ns_bin=cell_bin[ns_cells[::n_steps]],
        gap_bin=cell_bin[gap_cells],
    )


# --- the session -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TwinSession:
    """A twin: what the NWB writer needs, the truth, and the state its spikes are drawn from.

    seen: (P,) class the visual system responded to on each presentation (lapses);
    gain: (P,) shared gain; unit_gain: (P, U) drift x presence at each presentation;
    gap_gain: (J, U) the same for the pieces between presentations; counts: (U, B) spikes
    per presence bin; noise: (U,) spikes of the probe noise inside invalid_times.
    """

    real: AllenSession
    mouse: MouseParams
    params: SyntheticParams
    plan: pd.DataFrame
    probes: pd.DataFrame
    channels: pd.DataFrame
    units: pd.DataFrame
    model: UnitModel
    presentations: pd.DataFrame
    spontaneous: pd.DataFrame
    invalid_times: pd.DataFrame
    truth: SyntheticTruth
    seen: np.ndarray
    gain: np.ndarray
    timeline: Timeline
    gap_gain: np.ndarray
    spont_hz: np.ndarray
    counts: np.ndarray
    noise: np.ndarray
    noise_interval: tuple[float, float]

    @property
    def session_id(self) -> int:
        return self.real.twin_id

    @property
    def specimen_id(self) -> int:
        return TWIN_SPECIMEN_BASE + self.real.twin_id

    @property
    def n_spikes(self) -> np.ndarray:
        """(U,) spikes of each unit over the whole session."""
        return self.counts.sum(axis=1) + self.noise


def make_twin(params: SyntheticParams, session_id: int) -> TwinSession:
    """Everything about twin `session_id` except its spike times (drawn while writing)."""
    real = twin_of(session_id)
    mouse = draw_mouse(params, real)
    rng = mouse_rng(params, real.twin_id, 1)
    plan = unit_plan(real, mouse, params.unit_scale)
    probes = make_probes(real.twin_id, real.probe_count)
    channels, _ = make_channels(real.twin_id, probes, plan, real.channel_count, rng)
    units = place_units(real.twin_id, plan, channels, rng)
    model = unit_model(units, mouse, rng)
    features = image_features(params)
    rates, spont_hz = response_table(model, features, rng)
    presentations, spontaneous = schedule(params, rng)
    kernel = lapse_kernel(features, mouse.lapse)
    shown = presentations["class"].to_numpy()
    seen = (rng.random(len(shown))[:, None] > np.cumsum(kernel[shown], axis=1)).sum(axis=1)
    seen = np.minimum(seen, len(kernel) - 1)
    gain = shared_gain(mouse, presentations["stimulus_block"].to_numpy(), rng)
    line = timeline(presentations, spontaneous)
    middle = presentations["start_time"].to_numpy() + PRESENTATION_S / 2
    unit_gain = drift(model, mouse, np.r_[middle, line.gap_mid], rng)
    unit_gain, gap_gain = unit_gain[: len(middle)], unit_gain[len(middle) :]
    invalid = make_invalid_times(real.twin_id, probes, presentations)
    noisy = invalid[invalid["tags"].map(lambda t: t[0] == "EcephysProbe")].iloc[0]
    on_probe = units["peak_channel_id"].to_numpy() // 1000 == int(noisy["tags"][1])
    interval = (float(noisy["start_time"]), float(noisy["stop_time"]))
    noise = np.where(
        on_probe, rng.poisson(NOISE_RATE_HZ * (interval[1] - interval[0]), len(units)), 0
    )
    truth = SyntheticTruth(
        rates_hz=rates,
        frames=np.arange(-1, params.n_images, dtype=np.int64),
        unit_ids=units["id"].to_numpy(),
        baseline_hz=spont_hz,
        step_s=STEP_S,
        gain_sd=mouse.gain_sd,
        unit_gain=unit_gain,
        confusion=kernel,
    )
    counts = expected_counts(truth, seen, gain, line, gap_gain, spont_hz)
    return TwinSession(
        real=real,
        mouse=mouse,
        params=params,
        plan=plan,
        probes=probes,
        channels=channels,
        units=units,
        model=model,
        presentations=presentations,
        spontaneous=spontaneous,
        invalid_times=invalid,
        truth=truth,
        seen=seen,
        gain=gain,
        timeline=line,
        gap_gain=gap_gain,
        spont_hz=spont_hz,
        counts=spiketrains.segment_counts(counts, mouse_rng(params, real.twin_id, 2)),
        noise=noise.astype(np.int64),
        noise_interval=interval,
    )


def expected_counts(
    truth: SyntheticTruth,
    seen: np.ndarray,
    gain: np.ndarray,
    line: Timeline,
    gap_gain: np.ndarray,
    spont_hz: np.ndarray,
) -> np.ndarray:
    """(U, PRESENCE_BINS) expected spikes of each unit in each presence bin."""
    assert truth.unit_gain is not None
    per_image = truth.rates_hz.sum(axis=1, dtype=np.float64) * truth.step_s  # (C, U)
    ns = gain[:, None] * truth.unit_gain * per_image[seen]  # (P, U) per presentation
    widths = np.diff(line.edges)[line.gap_cells]
    gaps = widths[:, None] * gap_gain * spont_hz  # (J, U)
    out = np.zeros((PRESENCE_BINS, len(spont_hz)))
    np.add.at(out, line.ns_bin, ns)
    np.add.at(out, line.gap_bin, gaps)
    return out.T


def presentation_counts(twin: TwinSession, rng: np.random.Generator) -> np.ndarray:
    """(P, U) spike counts per natural-scenes presentation, drawn from the twin's model
    without its spike times (the law of its NWB's counts, probe noise aside): for
    calibration and tests."""
    assert twin.truth.unit_gain is not None
    per_image = twin.truth.rates_hz.sum(axis=1, dtype=np.float64) * STEP_S
    return rng.poisson(twin.gain[:, None] * twin.truth.unit_gain * per_image[twin.seen])


# --- what the NWB holds ----------------------------------------------------------------------


def quality_metrics(twin: TwinSession, rng: np.random.Generator) -> pd.DataFrame:
    """The units table with Allen's columns; metrics follow each unit's defects.

    presence_ratio is computed from the unit's own spikes as AllenSDK does (share of 100
    bins with a spike, divided by 101), firing_rate from its spike count.
    """
    units, model = twin.units, twin.model
    n = len(units)
    passes = units["passes_qc"].to_numpy(bool)
    present = twin.counts > 0
    noisy_bin = (
        np.searchsorted(twin.timeline.edges[twin.timeline.bins], np.mean(twin.noise_interval)) - 1
    )
    present[twin.noise > 0, noisy_bin] = True
    truncated = model.keep < 0.9
    snr = rng.lognormal(np.log(np.where(truncated, 1.6, np.where(passes, 3.0, 2.6))), 0.35, n)
    out = units[["id", "peak_channel_id", "local_index", "cluster_id"]].copy()
    out["quality"] = np.where(passes | (rng.random(n) < 0.85), "good", "noise")
    out["firing_rate"] = twin.n_spikes / SESSION_S
    out["isi_violations"] = model.isi_violations
    out["presence_ratio"] = present.sum(axis=1) / (PRESENCE_BINS + 1)
    out["amplitude_cutoff"] = np.minimum(1.0 - model.keep, 0.5)
    out["snr"] = snr
    out["amplitude"] = 30.0 * snr * rng.lognormal(0.0, 0.1, n)  # µV; noise ~30 µV
    out["waveform_duration"] = np.where(
        model.fast, rng.normal(0.27, 0.04, n), rng.normal(0.66, 0.08, n)
    ).clip(0.1, 1.2)
    out["l_ratio"] = rng.exponential(np.where(passes, 0.02, 0.1), n)
    out["d_prime"] = rng.lognormal(np.log(np.where(passes, 4.0, 2.5)), 0.3, n)
    return out


def _chunks(n_units: int) -> list[np.ndarray]:
    return np.array_split(np.arange(n_units), max(1, -(-n_units // CHUNK_UNITS)))


def spike_times(twin: TwinSession) -> Iterator[np.ndarray]:
    """Every unit's sorted spike times, CHUNK_UNITS units at a time (step 2 of
    `npdecode.sources.spiketrains`: the counts per presence bin are already drawn)."""
    line, truth = twin.timeline, twin.truth
    assert truth.unit_gain is not None
    n_cells = len(line.edges) - 1
    mass = np.diff(line.edges)  # (K,) cell widths: expected spikes = rate x width
    by_unit = np.ascontiguousarray(truth.rates_hz.transpose(2, 0, 1))  # (U, C, S)
    gain = twin.gain[:, None] * truth.unit_gain * STEP_S  # (P, U)
    runs = _runs(line.ns_cells)
    tiled = np.tile(line.edges, CHUNK_UNITS)
    a, b = twin.noise_interval
    for k, chunk in enumerate(_chunks(len(twin.units))):
        rng = np.random.default_rng([twin.params.seed, 7, twin.real.twin_id, 3, k])
        buf = np.empty((len(chunk), n_cells + 1))
        cells = buf[:, 1:]
        cells[:, line.gap_cells] = (twin.gap_gain[:, chunk] * twin.spont_hz[chunk]).T * mass[
            line.gap_cells
        ]
        seen = by_unit[chunk][:, twin.seen]  # (u, P, S)
        for p0, p1, c0 in runs:  # a block of back-to-back presentations: contiguous cells
            view = cells[:, c0 : c0 + (p1 - p0) * seen.shape[2]].reshape(len(chunk), p1 - p0, -1)
            np.multiply(seen[:, p0:p1], gain[p0:p1, chunk].T[:, :, None], out=view)
        axis = spiketrains.stack_cumulative(buf)
        times = spiketrains.place_spikes(axis, tiled, line.bins, twin.counts[chunk], rng)
        noise = twin.noise[chunk]
        if noise.any():  # the probe noise inside invalid_times, merged into each train
            parts = np.split(times, np.cumsum(twin.counts[chunk].sum(axis=1))[:-1])
            extra = a + (b - a) * spiketrains.sorted_uniforms(noise, rng)
            extra_parts = np.split(extra, np.cumsum(noise[noise > 0])[:-1])
            for j, e in zip(np.flatnonzero(noise), extra_parts, strict=True):
                parts[j] = np.sort(np.concatenate([parts[j], e]))
            times = np.concatenate(parts)
        yield times


def _runs(ns_cells: np.ndarray) -> list[tuple[int, int, int]]:
    """(first presentation, end presentation, first cell) of each block of contiguous cells."""
    n_steps = round(PRESENTATION_S / STEP_S)
    first = ns_cells[::n_steps]  # (P,) first cell of each presentation
    breaks = np.flatnonzero(np.diff(first) != n_steps) + 1
    bounds = np.r_[0, breaks, len(first)]
    return [
        (int(p0), int(p1), int(first[p0])) for p0, p1 in zip(bounds[:-1], bounds[1:], strict=True)
    ]


def spike_amplitudes(twin: TwinSession, amplitude_uv: np.ndarray) -> Iterator[np.ndarray]:
    """Each spike's amplitude (V): a Gaussian (sd 25 % of the unit's mean amplitude) cut by
    the detection threshold at the unit's missed share, so the amplitude distribution is
    what its amplitude_cutoff measures. Drawn from a 256-quantile table (fast)."""
    quantiles = (np.arange(256) + 0.5) / 256
    for k, chunk in enumerate(_chunks(len(twin.units))):
        rng = np.random.default_rng([twin.params.seed, 7, twin.real.twin_id, 4, k])
        n = twin.n_spikes[chunk]
        missed = np.clip(1.0 - twin.model.keep[chunk], 1e-4, 0.95)[:, None]
        z = _ndtri(missed + quantiles * (1 - missed))  # (u, 256) above the threshold
        unit = np.repeat(np.arange(len(chunk)), n)
        pick = rng.integers(0, 256, int(n.sum()), dtype=np.uint16)
        yield amplitude_uv[chunk][unit] * 1e-6 * (1.0 + 0.25 * z[unit, pick])


def _ndtri(p: np.ndarray) -> np.ndarray:
    from scipy.special import ndtri

    return np.asarray(ndtri(p))


def description(twin: TwinSession) -> str:
    """The NWB session_description: which real session this synthetic one mirrors."""
    return (
        f"Synthetic twin of Allen Visual Coding - Neuropixels session {twin.real.session_id} "
        f"(specimen {twin.real.specimen_id}); generated by npdecode (fetch.synthetic.preset "
        f"allen, seed {twin.params.seed}); not recorded data"
    )


def twin_record(twin: TwinSession) -> dict:
    """twin.json: the mirrored session, the mouse's parameters and the unit plan."""
    return {
        "session_id": twin.session_id,
        "twin_of": twin.real.session_id,
        "real_specimen_id": twin.real.specimen_id,
        "specimen_id": twin.specimen_id,
        "seed": twin.params.seed,
        "unit_scale": twin.params.unit_scale,
        "mouse": asdict(twin.mouse),
        "area_qc_ratio": AREA_QC_RATIO,
        "units": twin.plan.to_dict(orient="list"),
        "n_spikes": int(twin.n_spikes.sum()),
    }


def as_record(twin: TwinSession) -> SessionRecord:
    """The NWB writer's view of a twin, spikes streamed."""
    units = quality_metrics(twin, mouse_rng(twin.params, twin.real.twin_id, 5))
    amplitude = units["amplitude"].to_numpy()
    note = (
        f"synthetic twin of Allen session {twin.real.session_id}: {len(units)} units "
        f"({int(twin.plan['n_pass'].sum())} designed to pass AllenSDK's default filters), "
        f"mouse {asdict(twin.mouse)}"
    )
    return SessionRecord(
        session_id=twin.session_id,
        specimen_id=twin.specimen_id,
        start_time=datetime(2019, 1, 1, 9, 0, tzinfo=UTC),
        probes=twin.probes,
        channels=twin.channels,
        units=units,
        spike_times=SpikeStream(
            counts=twin.n_spikes,
            times=lambda: spike_times(twin),
            amplitudes=lambda: spike_amplitudes(twin, amplitude),
        ),
        presentations={
            "natural_scenes": twin.presentations.drop(columns="class"),
            "spontaneous": twin.spontaneous,
        },
        invalid_times=twin.invalid_times,
        description=description(twin),
        notes=note,
        specimen_name=f"synthetic-twin-{twin.session_id}",
    )


def fetch_twin(params: SyntheticParams, session_id: int, layout: Layout) -> None:
    """Generate twin `session_id` into its raw folder: NWB, truth, tables and twin.json."""
    twin = make_twin(params, session_id)
    log.info(
        "generating twin %d of Allen session %d (%d units, %d spikes)",
        session_id,
        twin.real.session_id,
        len(twin.units),
        int(twin.n_spikes.sum()),
    )
    out_dir = layout.raw_dir(session_id)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        nwb = tmp / layout.nwb(session_id).name
        write_session_nwb(nwb, as_record(twin))
        write_truth(tmp / layout.truth(session_id).name, twin.truth, twin.gain)
        write_tables(tmp, metadata_tables(nwb, session_id))
        write_json(tmp / layout.twin_record(session_id).name, twin_record(twin))
    log.info("wrote %s", out_dir)
