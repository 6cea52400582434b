"""A synthetic Visual Coding – Neuropixels session whose ground truth is known.

Units are inhomogeneous Poisson neurons. Each image has a hidden feature vector
(``N_LATENT`` dims; the blank gray screen has none). A tuned unit's evoked amplitude
is a log-linear function of those features, and so are its response latency and its
transient-vs-sustained mix, so spike *timing* within the 250 ms presentation carries
information that summed counts do not. A shared per-presentation gain (log-normal,
``gain_sd``) multiplies every unit's rate, giving the super-Poisson trial-to-trial
variability of real cortex. Units sit on six probes in visual cortex, hippocampus and
thalamus; hippocampal and unassigned (``grey``) units are mostly untuned, and a few
units are near-silent ("dead").

The true rate of every unit for every image, on a 5 ms grid, is returned in
`SyntheticTruth`; `npdecode.reference.ideal_observer` turns it into the accuracy of the
Bayes-optimal decoder on any test set.

The default difficulty (params `fetch.synthetic`) was fixed once, when the project
started: ideal observer ≈ 0.9 on the default test split, decoders of summed counts
well below it, chance 1/119. Model work must not retune it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from npdecode.formats.files import atomic_path, write_json
from npdecode.formats.tables import write_tables
from npdecode.formats.truth import SyntheticTruth, write_truth
from npdecode.nwb.read import metadata_tables, verify_session_nwb
from npdecode.nwb.write import SessionRecord, write_session_nwb
from npdecode.params import SyntheticParams
from npdecode.paths import Layout

log = logging.getLogger(__name__)
PRESENTATION_S = 0.25  # natural_scenes presentations are 250 ms, back to back
STEP_S = 0.005  # resolution of the true rate functions
N_LATENT = 8  # dimensions of the hidden image features
CHANNELS_PER_PROBE = 384
PROBE_NAMES = ("probeA", "probeB", "probeC", "probeD", "probeE", "probeF")
CORTEX = ("VISam", "VISpm", "VISp", "VISl", "VISal", "VISrl")  # one target area per probe
LEAD_S = 60.0  # spontaneous activity before the first block and after the last
GAP_S = 300.0  # other stimuli between natural_scenes blocks
# (region, share of units, depth range from the probe tip in µm, P(tuned))
REGIONS = (
    ("cortex", 0.55, (2400.0, 3800.0), 0.85),
    ("hippocampus", 0.20, (1400.0, 2400.0), 0.10),
    ("thalamus", 0.20, (400.0, 1400.0), 0.70),
    ("grey", 0.05, (0.0, 400.0), 0.20),
)
DEAD_FRACTION = 0.05
DEAD_RATE_HZ = 0.005
NOISE_RATE_HZ = 50.0  # spurious firing inside a probe's invalid interval


@dataclass(frozen=True)
class SyntheticSession:
    """Everything the NWB writer needs, plus the truth saved beside the file."""

    session_id: int
    specimen_id: int
    probes: pd.DataFrame  # one row per probe, column id
    channels: pd.DataFrame  # one row per channel, column id
    units: pd.DataFrame  # one row per unit, column id
    spike_times: list[np.ndarray]  # sorted spike times (s), aligned with units rows
    presentations: pd.DataFrame  # natural_scenes presentations, time order
    spontaneous: pd.DataFrame  # the periods between blocks
    invalid_times: pd.DataFrame  # start_time, stop_time, tags (list of str)
    truth: SyntheticTruth
    gains: np.ndarray  # (P,) the gain drawn for each presentation
    start_time: datetime


def specimen_of(params: SyntheticParams, session_id: int) -> int:
    """The synthetic mouse of a session: `sessions_per_mouse` consecutive ids share one."""
    return 700000001 + (session_id - 1) // params.sessions_per_mouse


@dataclass(frozen=True)
class ImageCode:
    """How a mouse's visual system sees the images.

    Attributes:
        features: (C, N_LATENT) hidden features of each class (row 0, the blank, is zero);
            a property of the images, shared by every session of every mouse.
        latency_axis, transient_axis: (N_LATENT,) feature directions that shift response
            latency and transient mix in most of this mouse's units.
    """

    features: np.ndarray
    latency_axis: np.ndarray
    transient_axis: np.ndarray


def image_code(params: SyntheticParams, specimen_id: int) -> ImageCode:
    """The image features (seeded by `seed` alone) and one mouse's timing axes."""
    features = np.random.default_rng([params.seed, 0]).normal(
        0.0, 1.0, (params.n_images + 1, N_LATENT)
    )
    features[0] = 0.0  # the blank: no evoked response
    mouse = np.random.default_rng([params.seed, 1, specimen_id])
    axes = mouse.normal(0.0, 1.0, (2, N_LATENT)) / np.sqrt(N_LATENT)
    return ImageCode(features, axes[0], axes[1])


def session_rng(params: SyntheticParams, session_id: int) -> np.random.Generator:
    """One seeded stream per (seed, session): sessions differ, reruns repeat."""
    return np.random.default_rng([params.seed, 2, session_id])


def make_session(params: SyntheticParams, session_id: int) -> SyntheticSession:
    """Generate a whole session: probes, channels, units, stimulus table and spikes."""
    rng = session_rng(params, session_id)
    specimen = specimen_of(params, session_id)
    probes = make_probes(session_id)
    channels = make_channels(probes, rng)
    units, regions = make_units(params.n_units, channels, session_id, rng)
    truth = make_truth(params, units, regions, image_code(params, specimen), rng)
    presentations, spontaneous = make_schedule(params, truth.frames, rng)
    gains = np.exp(rng.normal(-(params.gain_sd**2) / 2, params.gain_sd, len(presentations)))
    invalid = make_invalid_times(session_id, probes, presentations)
    noisy = _noisy_units(units, probes, invalid)
    end = float(spontaneous["stop_time"].max())
    spikes = simulate_spikes(truth, presentations, gains, end, rng, noisy=noisy)
    units = _add_quality_metrics(units, spikes, end, rng)
    return SyntheticSession(
        session_id=session_id,
        specimen_id=specimen,
        probes=probes,
        channels=channels,
        units=units,
        spike_times=spikes,
        presentations=presentations,
        spontaneous=spontaneous,
        invalid_times=invalid,
        truth=truth,
        gains=gains,
        start_time=datetime(2019, 1, 1, 9, 0, tzinfo=UTC),
    )


# --- anatomy ------------------------------------------------------------------------


def make_probes(session_id: int) -> pd.DataFrame:
    """Six Neuropixels probes, A–F, with Allen-style ids (distinct per session)."""
    n = len(PROBE_NAMES)
    return pd.DataFrame(
        {
            "id": session_id * 100 + np.arange(n),
            "name": list(PROBE_NAMES),
            "sampling_rate": np.full(n, 30000.0),
            "lfp_sampling_rate": np.full(n, 2500.0),
            "has_lfp_data": np.ones(n, bool),
            "location": [f"See electrode locations ({a})" for a in CORTEX],
        }
    )


def _region_of_depth(depth: np.ndarray) -> np.ndarray:
    out = np.empty(len(depth), dtype=object)
    for name, _, (lo, hi), _ in REGIONS:
        out[(depth >= lo) & (depth < hi)] = name
    out[depth >= REGIONS[0][2][1]] = "cortex"
    return out


def make_channels(probes: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """384 channels per probe with depth, CCF position and structure acronym."""
    frames = []
    for k, probe in enumerate(probes.itertuples()):
        ch = np.arange(CHANNELS_PER_PROBE)
        vertical = 20.0 + (ch // 2) * 20.0  # µm from the tip, as `probe_channels` places them
        region = _region_of_depth(vertical)
        area = np.where(region == "cortex", CORTEX[k], "grey").astype(object)
        area[region == "hippocampus"] = np.where(
            vertical[region == "hippocampus"] > 1900, "CA1", "DG"
        )
        area[region == "thalamus"] = "LGd" if k < 3 else "LP"
        frames.append(probe_channels(probe, k, ch, area, rng, region=region))
    return pd.concat(frames, ignore_index=True)


def probe_channels(
    probe: Any,
    k: int,
    sites: np.ndarray,
    location: np.ndarray,
    rng: np.random.Generator,
    **extra: np.ndarray,
) -> pd.DataFrame:
    """Allen's channel table of probe number `k` (a row of the probes table): its recording
    `sites` (channel numbers) with their position on the shank, CCF coordinates and
    `location` (structure acronym), plus `extra` columns before `valid_data`.

    Two columns per row of sites 20 µm apart, four horizontal offsets; the probe enters the
    dorsal surface at a point that moves back and down with `k` (drawn from `rng`: three
    normals), and CCF coordinates follow the shank from there.
    """
    vertical = 20.0 + (sites // 2) * 20.0  # µm from the tip, two columns per row
    entry = np.array([8000.0 + 300 * k, 400.0, 6500.0 + 250 * k]) + rng.normal(0, 50, 3)
    depth = 3840.0 - vertical
    return pd.DataFrame(
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
            **extra,
            "valid_data": np.ones(len(sites), bool),
        }
    )


def make_units(
    n_units: int, channels: pd.DataFrame, session_id: int, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    """Place units on channels by region share; return the units table and their regions."""
    names, shares = [r[0] for r in REGIONS], np.array([r[1] for r in REGIONS])
    region = rng.choice(len(REGIONS), size=n_units, p=shares / shares.sum())
    probe = rng.integers(0, len(PROBE_NAMES), n_units)
    peak = np.empty(n_units, dtype=np.int64)
    by_key = channels.groupby([channels["probe_id"] % 100, "region"]).indices
    for u in range(n_units):
        candidates = by_key[(probe[u], names[region[u]])]
        peak[u] = channels["id"].to_numpy()[rng.choice(candidates)]
    order = np.lexsort((peak,))  # Allen units tables run probe by probe, tip to surface
    peak, region = peak[order], region[order]
    units = pd.DataFrame(
        {
            "id": session_id * 100000 + np.arange(n_units, dtype=np.int64),
            "peak_channel_id": peak,
            "local_index": np.arange(n_units),
            "cluster_id": np.arange(n_units) + 3,
        }
    )
    return units, np.array(names, dtype=object)[region]


# --- response model -----------------------------------------------------------------


def make_truth(
    params: SyntheticParams,
    units: pd.DataFrame,
    regions: np.ndarray,
    code: ImageCode,
    rng: np.random.Generator,
) -> SyntheticTruth:
    """Draw baseline rates, tuning and time courses; return the (C, S, U) rate table."""
    n_units = len(units)
    tuned_p = dict((r[0], r[3]) for r in REGIONS)
    tuned = rng.random(n_units) < np.array([tuned_p[r] for r in regions])
    dead = rng.random(n_units) < DEAD_FRACTION
    baseline = np.exp(rng.normal(np.log(3.0), 0.9, n_units))
    baseline[dead] = DEAD_RATE_HZ
    tuned &= ~dead

    evoked = _evoked_amplitude(params, baseline, tuned, code.features, rng)  # (U, C)
    latency, transient = _time_course(params, code, n_units, rng)  # (U, C) each
    tau = rng.uniform(0.010, 0.030, n_units)[:, None, None]  # transient decay (s)

    n_steps = round(PRESENTATION_S / STEP_S)
    t = (np.arange(n_steps) + 0.5) * STEP_S  # (S,) step centres
    dt = t[None, None, :] - latency[:, :, None]  # (U, C, S) time since response onset
    on = dt > 0
    peak = np.where(on, (dt / tau) * np.exp(1 - dt / tau), 0.0)  # alpha function, max 1
    plateau = np.where(on, 0.5 * (1 - np.exp(-np.maximum(dt, 0) / 0.010)), 0.0)
    shape = transient[..., None] * peak + (1 - transient[..., None]) * plateau
    rates = baseline[:, None, None] + evoked[..., None] * shape  # (U, C, S)
    rates = np.maximum(rates, 0.0).transpose(1, 2, 0)  # (U, C, S) -> (C, S, U)
    return SyntheticTruth(
        rates_hz=rates.astype(np.float32),
        frames=np.arange(-1, params.n_images, dtype=np.int64),
        unit_ids=units["id"].to_numpy(),
        baseline_hz=baseline,
        step_s=STEP_S,
        gain_sd=params.gain_sd,
    )


def _evoked_amplitude(
    params: SyntheticParams,
    baseline: np.ndarray,
    tuned: np.ndarray,
    phi: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Peak evoked rate (Hz) per unit and image: log-linear in the image features."""
    n_units = len(baseline)
    weights = rng.normal(0.0, 1.0, (n_units, N_LATENT)) / np.sqrt(N_LATENT)
    scale = baseline * np.exp(rng.normal(np.log(2.0), 0.5, n_units)) * params.tuning_strength
    drive = 0.5 * (weights @ phi.T)  # (U, C), sd ≈ 0.5
    evoked = scale[:, None] * np.exp(drive - 0.125) * tuned[:, None]
    evoked[:, 0] = 0.0
    return evoked


def _time_course(
    params: SyntheticParams, code: ImageCode, n_units: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Latency (s) and transient fraction per unit and image.

    Both depend on the image features through the mouse's axis, shared by most units
    (80 %), plus a unit-specific direction, so a decoder that pools timing across units
    (or across sessions of one mouse) gains.
    """

    def projection(axis: np.ndarray) -> np.ndarray:
        own = rng.normal(0.0, 1.0, (n_units, N_LATENT)) / np.sqrt(N_LATENT)
        loading = rng.uniform(0.5, 1.5, (n_units, 1))
        return (0.8 * axis * loading + 0.2 * own) @ code.features.T  # (U, C)

    strength = params.timing_strength
    latency = rng.uniform(0.030, 0.070, n_units)[:, None]
    latency = np.clip(latency + 0.030 * strength * projection(code.latency_axis), 0.020, 0.150)
    logit = rng.normal(0.0, 0.5, n_units)[:, None]
    logit = logit + 2.5 * strength * projection(code.transient_axis)
    return latency, 1.0 / (1.0 + np.exp(-logit))


# --- stimulus schedule and spikes ---------------------------------------------------


def make_schedule(
    params: SyntheticParams, frames: np.ndarray, rng: np.random.Generator
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Natural-scenes presentations in `n_blocks` blocks, shuffled within each block.

    Every image (and the blank) gets `n_repeats` presentations spread evenly over the
    blocks; presentations are 250 ms and back to back within a block, and blocks are
    separated by GAP_S of other stimuli (written as `spontaneous` periods).
    """
    per_block = np.array_split(np.arange(params.n_repeats), params.n_blocks)
    rows, gaps, t = [], [], LEAD_S
    gaps.append((0.0, LEAD_S))
    for b, reps in enumerate(per_block):
        order = rng.permutation(np.repeat(np.arange(len(frames)), len(reps)))
        start = t + PRESENTATION_S * np.arange(len(order))
        rows.append(
            pd.DataFrame({"start_time": start, "class": order, "stimulus_block": 2 + 3 * b})
        )
        t = float(start[-1] + PRESENTATION_S)
        pad = GAP_S if b < params.n_blocks - 1 else LEAD_S
        gaps.append((t, t + pad))
        t += pad
    return stimulus_tables(rows, gaps, frames)


def stimulus_tables(
    rows: list[pd.DataFrame], gaps: list[tuple[float, float]], frames: np.ndarray
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Allen's natural-scenes and spontaneous tables from a schedule.

    `rows`: per block, `start_time`, `class` and `stimulus_block` of its 250 ms
    presentations; `gaps`: the (start, stop) s between them; `frames[class]` the image
    frame of each class (-1: blank). The presentations keep `class` as a last column.
    """
    table = pd.concat(rows, ignore_index=True)
    table["stop_time"] = table["start_time"] + PRESENTATION_S
    table["frame"] = frames[table["class"].to_numpy()].astype(np.float64)
    table["stimulus_name"] = "natural_scenes"
    table["stimulus_index"] = 5
    columns = [
        "start_time",
        "stop_time",
        "stimulus_name",
        "stimulus_block",
        "stimulus_index",
        "frame",
    ]
    spont = pd.DataFrame(gaps, columns=["start_time", "stop_time"])
    spont["stimulus_name"] = "spontaneous"
    spont["stimulus_block"] = np.arange(len(gaps)) * 3 + 1
    spont["stimulus_index"] = 0
    return table[columns + ["class"]], spont


def stimulus_record(
    presentations: pd.DataFrame, spontaneous: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """The NWB writer's stimulus tables (`SessionRecord.presentations`) of a schedule."""
    return {
        "natural_scenes": presentations.drop(columns="class"),
        "spontaneous": spontaneous,
    }


def make_invalid_times(
    session_id: int, probes: pd.DataFrame, presentations: pd.DataFrame
) -> pd.DataFrame:
    """Two invalid intervals, tagged as AllenSDK writes them: [type, id, label].

    One covers all probes for up to 4 s early in the first block; one covers a single
    probe for up to 20 s in the middle block. Presentations that overlap them must be
    dropped downstream, and the probe's spikes inside them are noise.
    """
    blocks = presentations.groupby("stimulus_block")
    first = blocks.get_group(min(blocks.groups))
    middle = blocks.get_group(sorted(blocks.groups)[len(blocks.groups) // 2])

    def inside(block: pd.DataFrame, at: float, most_s: float) -> tuple[float, float]:
        t0, t1 = float(block["start_time"].min()), float(block["stop_time"].max())
        start = t0 + at * (t1 - t0) + 0.013  # not on a presentation edge
        return start, start + min(most_s, 0.3 * (t1 - t0))

    probe = probes.iloc[min(2, len(probes) - 1)]
    (a0, a1), (b0, b1) = inside(first, 0.2, 4.0), inside(middle, 0.3, 20.0)
    return pd.DataFrame(
        {
            "start_time": [a0, b0],
            "stop_time": [a1, b1],
            "tags": [
                ["EcephysSession", str(session_id), "all_probes"],
                ["EcephysProbe", str(int(probe["id"])), str(probe["name"])],
            ],
        }
    )


def _noisy_units(
    units: pd.DataFrame, probes: pd.DataFrame, invalid: pd.DataFrame
) -> list[tuple[np.ndarray, float, float]]:
    """(unit mask, start, stop) for each probe-scoped invalid interval: spurious spikes."""
    probe_of_unit = units["peak_channel_id"].to_numpy() // 1000
    out = []
    for row in invalid.itertuples():
        if row.tags[0] == "EcephysProbe":
            out.append((probe_of_unit == int(row.tags[1]), row.start_time, row.stop_time))
    return out


def simulate_spikes(
    truth: SyntheticTruth,
    presentations: pd.DataFrame,
    gains: np.ndarray,
    end_s: float,
    rng: np.random.Generator,
    noisy: Sequence[tuple[np.ndarray, float, float]] = (),
) -> list[np.ndarray]:
    """Draw spike times for every unit over [0, end_s).

    Inside presentation p the rate is `gains[p] * rates_hz[class_p]`, piecewise constant
    on the STEP_S grid; outside presentations it is the unit's baseline. Returns one
    sorted float64 array per unit.
    """
    n_units = truth.rates_hz.shape[2]
    starts = presentations["start_time"].to_numpy()
    classes = presentations["class"].to_numpy()
    n_steps = truth.rates_hz.shape[1]
    pieces: list[list[np.ndarray]] = [[] for _ in range(n_units)]
    step_starts = starts[:, None] + truth.step_s * np.arange(n_steps)  # (P, S)
    for chunk in np.array_split(np.arange(n_units), max(1, n_units // 25)):
        lam = truth.rates_hz[classes][:, :, chunk] * (gains[:, None, None] * truth.step_s)
        counts = rng.poisson(lam)  # (P, S, u)
        for j, u in enumerate(chunk):
            c = counts[:, :, j].ravel()
            t = np.repeat(step_starts.ravel(), c) + rng.random(int(c.sum())) * truth.step_s
            pieces[u].append(t)
    outside = _complement(starts, starts + n_steps * truth.step_s, end_s)
    for u in range(n_units):
        pieces[u].append(_homogeneous(truth.baseline_hz[u], outside, rng))
    for mask, a, b in noisy:
        for u in np.flatnonzero(mask):
            pieces[u].append(_homogeneous(NOISE_RATE_HZ, np.array([[a, b]]), rng))
    return [np.sort(np.concatenate(p)) for p in pieces]


def _complement(starts: np.ndarray, stops: np.ndarray, end_s: float) -> np.ndarray:
    """(K, 2) intervals of [0, end_s) not covered by the sorted, disjoint presentations."""
    lo = np.concatenate([[0.0], stops])
    hi = np.concatenate([starts, [end_s]])
    keep = hi > lo + 1e-12
    return np.stack([lo[keep], hi[keep]], axis=1)


def _homogeneous(rate_hz: float, intervals: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Poisson spikes at a constant rate over a set of disjoint intervals."""
    lengths = intervals[:, 1] - intervals[:, 0]
    n = rng.poisson(rate_hz * lengths.sum())
    pos = rng.random(n) * lengths.sum()  # position in concatenated time
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    k = np.clip(np.searchsorted(cum, pos, side="right") - 1, 0, len(lengths) - 1)
    return intervals[k, 0] + (pos - cum[k])


def _add_quality_metrics(
    units: pd.DataFrame, spikes: list[np.ndarray], end_s: float, rng: np.random.Generator
) -> pd.DataFrame:
    """Allen's quality columns: plausible spike-sorting metrics, firing rate from spikes."""
    n = len(units)
    units = units.copy()
    units["quality"] = np.where(rng.random(n) < 0.9, "good", "noise")
    units["firing_rate"] = np.array([len(s) for s in spikes]) / end_s
    units["isi_violations"] = rng.exponential(0.25, n)
    units["amplitude_cutoff"] = np.minimum(rng.beta(1.0, 12.0, n) * 0.6, 0.5)
    units["presence_ratio"] = np.clip(1.0 - rng.beta(1.0, 25.0, n), 0.0, 0.99)
    units["snr"] = rng.lognormal(np.log(2.5), 0.4, n)
    units["amplitude"] = rng.lognormal(np.log(120.0), 0.4, n)
    units["waveform_duration"] = rng.choice([0.3, 0.4, 0.6, 0.7], n)
    units["l_ratio"] = rng.exponential(0.02, n)
    units["d_prime"] = rng.lognormal(np.log(4.0), 0.3, n)
    return units


def as_record(session: SyntheticSession) -> SessionRecord:
    """The NWB writer's view of a synthetic session."""
    return SessionRecord(
        session_id=session.session_id,
        specimen_id=session.specimen_id,
        start_time=session.start_time,
        probes=session.probes,
        channels=session.channels,
        units=session.units,
        spike_times=session.spike_times,
        presentations=stimulus_record(session.presentations, session.spontaneous),
        invalid_times=session.invalid_times,
        n_images={"natural_scenes": int((session.truth.frames >= 0).sum())},
    )


# --- writing a session ---------------------------------------------------------------


def fetch_synthetic(
    params: SyntheticParams, session_id: int, layout: Layout, stimulus: str = "natural_scenes"
) -> None:
    """Generate session `session_id` into its raw folder: NWB, ground truth, metadata tables.

    The new NWB is verified (`verify_session_nwb`, for `stimulus`) before it replaces
    the folder: a session that fails leaves the previous one in place.
    """
    log.info("generating synthetic session %d (%d units)", session_id, params.n_units)
    session = make_session(params, session_id)
    place_generated(layout, session_id, as_record(session), session.truth, session.gains, stimulus)
    n_spikes = sum(len(s) for s in session.spike_times)
    log.info(
        "wrote %s (%d units, %d spikes)", layout.raw_dir(session_id), len(session.units), n_spikes
    )


def place_generated(
    layout: Layout,
    session_id: int,
    record: SessionRecord,
    truth: SyntheticTruth,
    gains: np.ndarray,
    stimulus: str,
    records: dict[str, dict] | None = None,
) -> None:
    """Write a generated session's raw folder (NWB, truth, Allen-style tables and the JSON
    `records` by file name) in a temporary folder, verify the NWB for `stimulus`, and only
    then swap it in: a session that fails leaves the previous one in place."""
    out_dir = layout.raw_dir(session_id)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        nwb = tmp / layout.nwb(session_id).name
        write_session_nwb(nwb, record)
        verify_session_nwb(nwb, session_id, stimulus)
        write_truth(tmp / layout.truth(session_id).name, truth, gains)
        write_tables(tmp, metadata_tables(nwb, session_id))
        for name, content in (records or {}).items():
            write_json(tmp / name, content)
