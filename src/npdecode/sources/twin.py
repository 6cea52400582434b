"""The synthetic twin of the Allen natural-scenes data set (`fetch.synthetic.preset: allen`).

Session ids 1-32 mirror the 32 real `brain_observatory_1.1` sessions, in the order of
`allen_vc_sessions.csv` (`npdecode.sources.allen_vc`): one synthetic mouse each, with that
session's probes, channel count, structures and area mix, and an unfiltered unit count
whose quality metrics make AllenSDK's default filters keep about the real filtered count.
The NWB says which real session it mirrors; its identifier is the twin id, its specimen
id is no real mouse's (TWIN_SPECIMEN_BASE + id).

Units (`npdecode.sources.twin_model`: per-area settings in GROUPS; the published figures
they follow are cited beside them and in docs/twin.md):
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

Per-mouse parameters (MouseParams: responsiveness, lapse rate, gain and drift size,
receptive-field coverage) make decodability differ between twins beyond their unit counts. The truth (rates per image and
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

from npdecode.formats.truth import SyntheticTruth
from npdecode.nwb.write import SessionRecord, SpikeStream
from npdecode.params import SyntheticParams
from npdecode.paths import Layout
from npdecode.sources import spiketrains
from npdecode.sources.allen_vc import AllenSession, twin_of
from npdecode.sources.synthetic import (
    NOISE_RATE_HZ,
    PRESENTATION_S,
    STEP_S,
    make_invalid_times,
    place_generated,
    stimulus_record,
)
from npdecode.sources.twin_model import (
    AREA_QC_RATIO,
    SESSION_S,
    MouseParams,
    UnitModel,
    draw_mouse,
    drift,
    image_features,
    lapse_kernel,
    make_channels,
    make_probes,
    mouse_rng,
    place_units,
    response_table,
    schedule,
    shared_gain,
    unit_model,
    unit_plan,
)

log = logging.getLogger(__name__)

TWIN_SPECIMEN_BASE = 990_000_000  # twin specimens: far above the real ones (699M-777M)
PRESENCE_BINS = 100  # AllenSDK's presence ratio: share of 100 bins with spikes (max 100/101)
CHUNK_UNITS = 32  # units whose spikes are drawn at once (memory ~ CHUNK_UNITS * 20 MB)


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
        presentations=stimulus_record(twin.presentations, twin.spontaneous),
        invalid_times=twin.invalid_times,
        description=description(twin),
        notes=note,
        specimen_name=f"synthetic-twin-{twin.session_id}",
    )


def fetch_twin(
    params: SyntheticParams, session_id: int, layout: Layout, stimulus: str = "natural_scenes"
) -> None:
    """Generate twin `session_id` into its raw folder: NWB, truth, tables and twin.json.

    The new NWB is verified (`verify_session_nwb`, for `stimulus`) before it replaces
    the folder, as for every other source.
    """
    twin = make_twin(params, session_id)
    log.info(
        "generating twin %d of Allen session %d (%d units, %d spikes)",
        session_id,
        twin.real.session_id,
        len(twin.units),
        int(twin.n_spikes.sum()),
    )
    record = {layout.twin_record(session_id).name: twin_record(twin)}
    place_generated(layout, session_id, as_record(twin), twin.truth, twin.gain, stimulus, record)
    log.info("wrote %s", layout.raw_dir(session_id))
