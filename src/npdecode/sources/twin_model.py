"""The Allen twin's model: who a twin's units are and how they respond (no time line, no files).

Everything here is a pure function of the params, the real session (`allen_vc`) and a
seeded generator; `npdecode.sources.twin` assembles a session from it, draws its spikes and
writes it. The figures these settings follow are cited beside each setting below and in
docs/twin.md.

- Where: `unit_plan` (units per structure, passing / failing AllenSDK's default filters),
  `make_probes`, `make_channels` (bands of structures along each probe), `place_units`.
- Who: `MouseParams` / `draw_mouse` (per-mouse responsiveness, lapse rate, gain, drift,
  receptive-field coverage), `unit_model` (rates, tuning settings and recording defects
  per unit, by area from GROUPS).
- How: `response_table` (rate per image and 5 ms step), `shared_gain`, `lapse_kernel`,
  `drift`, and the natural-scenes `schedule`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from npdecode.errors import ParamsError
from npdecode.params import SyntheticParams
from npdecode.sources.allen_vc import (
    HIPPOCAMPUS,
    MIDBRAIN,
    THALAMUS,
    VISUAL_AREAS,
    VISUAL_OTHER,
    AllenSession,
)
from npdecode.sources.synthetic import PRESENTATION_S, STEP_S, probe_channels, stimulus_tables

SESSION_S = 9600.0  # a brain_observatory_1.1 session: ~2.7 h of stimuli
N_FEATURES = 24  # hidden features per image (the images' own, shared by all mice)
# AllenSDK's quickstart keeps 93 VISp units of 791319847 after its default filters; the CSV
# (one published analysis, other filters) says 125. A twin's default-QC count in each of
# the eight visual areas is the CSV count times this ratio (docs/twin.md, "The Allen twin (`fetch.synthetic.preset: allen`)").
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
        latency_ms=50.0 + 40.0 * score,
        beta=beta,
        amp=amp,
        sustained=0.3,
        decay_ms=30.0 + 30.0 * (score + 0.5),
        depth=4,
    )


GROUPS: dict[str, GroupParams] = {
    "LGd": GroupParams(8.0, 0.7, 0.85, 29.0, 0.65, 1.3, 0.5, 25.0, 1),
    "LP": GroupParams(6.0, 0.8, 0.60, 54.0, 0.8, 0.9, 0.4, 45.0, 1),
    "VISp": _visual(-0.357, 0.75, 1.0, 1.0),
    "VISl": _visual(-0.093, 0.70, 1.05, 0.9),
    "VISrl": _visual(-0.059, 0.60, 1.05, 0.8),
    "VISal": _visual(0.152, 0.60, 1.1, 0.8),
    "VISpm": _visual(0.327, 0.55, 1.2, 0.75),
    "VISam": _visual(0.441, 0.50, 1.2, 0.7),
    "visual_other": _visual(0.2, 0.50, 1.1, 0.7),
    "thalamus": GroupParams(6.0, 0.9, 0.30, 55.0, 0.7, 0.6, 0.4, 45.0, 1),
    "midbrain": GroupParams(5.0, 1.0, 0.35, 45.0, 0.7, 0.7, 0.4, 40.0, 0),
    "hippocampus": GroupParams(1.2, 1.1, 0.10, 90.0, 0.8, 0.4, 0.5, 60.0, 2),
    "grey": GroupParams(2.5, 1.0, 0.30, 60.0, 0.9, 0.6, 0.4, 45.0, 5),
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
        frames.append(probe_channels(probe, k, sites, location, rng))
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
    # class 0 is the blank (frame -1), class c image c - 1
    return stimulus_tables(rows, gaps, np.arange(n_classes) - 1)


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
