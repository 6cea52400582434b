"""The offline twin of the O'Doherty & Sabes reaching sessions: `.mat` files and their truth.

Every one of the 47 real sessions (`npdecode.sources.macaque_sessions`) has a twin by the
same name, monkey, date and channel count, written in the real layout (`npdecode.mat.write`).

Behaviour (250 Hz, the real sample rate): targets on an 8 x 8 grid; after a reaction time
the cursor moves to the new target along a minimum-jerk path (bell-shaped speed,
Flash & Hogan 1985) whose duration grows with distance, holds, and the next target
appears; now and then the monkey rests (still periods, a few longer than 10 s, which the
field excludes).

Neurons: each monkey has one pool of neurons per channel, born and lost at a constant rate
(a birth-death process with mean lifetime `lifetime_days`), so sessions a few days apart
share most units and sessions months apart share few. A neuron's tuning drifts slowly: an
AR(1) over days towards fresh draws from the same distribution, so it decorrelates with
timescale `drift_days` while the population's tuning strength stays what it was. Rates are log-linear in the cursor's kinematics (Truccolo et al.
2005; Moran & Schwartz 1999): `rate = exp(b + k . v + a . p + s |v|)` on the kinematics
`lead_s` later for M1 (motor cortex leads movement) and at the same time for S1 (a
simplification: proprioceptive responses lag by a few tens of ms, within one bin).
Spikes are inhomogeneous Poisson. Each channel also has unsorted threshold crossings
(row 0 of `spikes`): a faster, weakly tuned multi-unit background.

Truth (`npdecode.formats.macaque_truth`): every unit's neuron id, channel, row, baseline,
coefficients and lead for this session, so the ideal decoder (`npdecode.reaching.ideal`)
decodes with the true model. The settings below are the fixed benchmark, chosen from
published figures before any decoder was run on the twin; they are not tuned to any
decoder's score.
"""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from npdecode.formats.macaque_truth import MacaqueTruth, write_macaque_truth
from npdecode.mat.write import MatSession, write_mat
from npdecode.sources.macaque_sessions import BY_NAME, SESSIONS, MacaqueSession

SAMPLE_S = 0.004
N_COEF = 5  # vx, vy, px, py, speed


@dataclass(frozen=True)
class TwinSettings:
    """The twin's generative settings (a fixed benchmark; see the module docstring).

    Behaviour (cursor in mm, as the real `cursor_pos`): targets on an 8 x 8 grid of
    `grid_mm` spacing; reach duration `0.35 + dist / 350` s (peak speeds ~250-400 mm/s);
    reaction 0.2-0.35 s and hold 0.2-0.5 s; after a reach, a rest with probability
    `rest_p` lasting Exp(`rest_mean_s`), and a long still period (10-25 s) with
    probability `long_rest_p`.

    Units: `sorted_per_channel` M1 sorted units per channel on average (0.8 on S1), mean
    lifetime on the array `lifetime_days` (chronic Utah arrays keep a unit for days to
    weeks; Dickey et al. 2009), tuning decorrelating over `drift_days` (coefficients
    c_d = r c_{d-1} + sqrt(1 - r^2) c_fresh, r = exp(-gap / drift_days): stationary). Baseline rates log-normal, median `rate_median_hz` (M1 sorted units fire a
    few to tens of Hz); `tuned_fraction` of units tuned, their log-rate modulation at
    300 mm/s ~ Exponential(mean `depth_mean`) (a typical cosine-tuned M1 unit doubles or
    halves its rate between preferred and anti-preferred direction); M1 leads the
    kinematics by `lead_s` (~100 ms, Moran & Schwartz 1999). Threshold crossings per
    channel at `hash_hz_range`, tuned at `hash_depth_scale` of a sorted unit's depth.
    """

    duration_s: float = 600.0
    grid_mm: float = 20.0
    rest_p: float = 0.1
    rest_mean_s: float = 1.5
    long_rest_p: float = 0.004
    reaction_s: tuple[float, float] = (0.2, 0.35)
    hold_s: tuple[float, float] = (0.2, 0.5)
    long_rest_s: tuple[float, float] = (10.0, 25.0)
    move_base_s: float = 0.35
    move_speed_mm_s: float = 350.0
    sorted_per_channel: float = 1.8
    sorted_per_channel_s1: float = 0.8
    lifetime_days: float = 30.0
    drift_days: float = 100.0
    rate_median_hz: float = 8.0
    rate_log_sd: float = 0.8
    tuned_fraction: float = 0.7
    depth_mean: float = 0.5
    position_depth: float = 0.15
    speed_depth: float = 0.2
    lead_s: float = 0.1
    hash_hz_range: tuple[float, float] = (10.0, 40.0)
    hash_depth_scale: float = 0.3
    fano_range: tuple[float, float] = (1.2, 2.0)
    gain_sd: float = 0.2
    gain_tau_s: float = 2.0
    loading_range: tuple[float, float] = (0.5, 1.5)
    seed: int = 583331

    def reach_model(self) -> np.ndarray:
        """The behaviour settings as `npdecode.formats.macaque_truth.REACH_KEYS` lists them."""
        return np.array(
            [
                self.grid_mm,
                *self.reaction_s,
                *self.hold_s,
                self.move_base_s,
                self.move_speed_mm_s,
                self.rest_p,
                self.rest_mean_s,
                self.long_rest_p,
                *self.long_rest_s,
            ]
        )


V_REF = 300.0  # mm/s: coefficients are stated per V_REF of velocity
P_REF = 80.0  # mm: and per P_REF of position


def _rng(settings: TwinSettings, *key: object) -> np.random.Generator:
    """One seeded stream per (seed, purpose...): reruns repeat, streams differ."""
    words = [zlib.crc32(str(k).encode()) for k in key]
    return np.random.default_rng([settings.seed, *words])


# --- behaviour ---------------------------------------------------------------------------


def reaches(settings: TwinSettings, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cursor and target positions (T, 2) on the 4 ms grid, `settings.duration_s` long."""
    n = int(round(settings.duration_s / SAMPLE_S))
    grid = (np.arange(8) - 3.5) * settings.grid_mm  # (8,) target coordinates, mm
    cursor = np.empty((n, 2))
    target = np.empty((n, 2))
    pos = np.zeros(2)
    goal = rng.choice(grid, 2)
    k = 0
    while k < n:
        new = rng.choice(grid, 2)
        while np.array_equal(new, goal):
            new = rng.choice(grid, 2)
        goal = new
        dist = float(np.linalg.norm(goal - pos))
        steps = [
            ("still", rng.uniform(*settings.reaction_s)),  # reaction: the target is shown
            ("move", settings.move_base_s + dist / settings.move_speed_mm_s),
            ("still", rng.uniform(*settings.hold_s)),  # hold
        ]
        if rng.random() < settings.rest_p:
            steps.append(("still", rng.exponential(settings.rest_mean_s)))
        if rng.random() < settings.long_rest_p:
            steps.append(("still", rng.uniform(*settings.long_rest_s)))
        for kind, dur in steps:
            full = max(1, int(round(dur / SAMPLE_S)))
            m = min(full, n - k)  # the recording may end mid-step
            if m <= 0:
                break
            if kind == "move":
                # normalised time over the whole reach, so a reach that the end of the
                # recording cuts is its first m samples, not the whole reach squeezed into them
                s = np.arange(1, m + 1) / full  # (m,)
                shape = 10 * s**3 - 15 * s**4 + 6 * s**5  # minimum jerk
                cursor[k : k + m] = pos + np.outer(shape, goal - pos)
                pos = goal.copy()
            else:
                cursor[k : k + m] = pos
            target[k : k + m] = goal
            k += m
    # Tracking jitter: sd 0.05 mm smoothed over 100 ms, so a still hand is not exactly
    # still yet stays under the field's 10 mm/s still threshold at 4 ms (brainsets).
    noise = rng.normal(0, 0.05, (n + 24, 2))
    kernel = np.ones(25) / 5.0  # sum of 25 draws / sqrt(25): sd stays 0.05 mm
    cursor += np.stack([np.convolve(noise[:, d], kernel, "valid")[:n] for d in range(2)], 1)
    return cursor, target


def features(t: np.ndarray, cursor: np.ndarray, shift_samples: int) -> np.ndarray:
    """(T, 5) tuning features [vx, vy, px, py, speed] (scaled by V_REF / P_REF), taken
    `shift_samples` later (edge-padded): a unit reads them with its lead."""
    vel = np.gradient(cursor, t, axis=0)
    f = np.column_stack([vel / V_REF, cursor / P_REF, np.linalg.norm(vel, axis=1) / V_REF])
    if shift_samples:
        f = np.concatenate([f[shift_samples:], np.repeat(f[-1:], shift_samples, 0)])
    return f


# --- neurons -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pool:
    """A monkey's neurons over its sessions (index = neuron id).

    channel: (N,) channel index; born/dies: (N,) day numbers (days since the monkey's first
    session) bounding when the neuron is on the array; baseline: (N,) log rate (Hz);
    coef: (D, N, 5) coefficients on each of the monkey's session days `days` (D,);
    fano: (N,) each neuron's private over-dispersion; loading: (N,) its weight on the
    shared gain (both properties of the neuron, the same in every session).
    """

    channel: np.ndarray
    born: np.ndarray
    dies: np.ndarray
    baseline: np.ndarray
    coef: np.ndarray
    days: np.ndarray
    fano: np.ndarray
    loading: np.ndarray


def monkey_pool(monkey: str, settings: TwinSettings) -> Pool:
    """The neurons of `monkey`, the same for every session of it (seeded by the monkey)."""
    sessions = [s for s in SESSIONS if s.monkey == monkey]
    first = min(s.date for s in sessions)
    days = np.array(sorted({(s.date - first).days for s in sessions}))
    n_chan = max(s.channels for s in sessions)
    rng = _rng(settings, "pool", monkey)
    life = settings.lifetime_days
    horizon = float(days[-1]) + 1.0
    chans, born, dies = [], [], []
    for c in range(n_chan):
        mean = settings.sorted_per_channel if c < 96 else settings.sorted_per_channel_s1
        # stationary birth-death: Poisson(mean) alive at day 0, births at rate mean / life
        n0 = rng.poisson(mean)
        nb = rng.poisson(mean / life * horizon)
        b = np.concatenate([np.full(n0, -np.inf), rng.uniform(0, horizon, nb)])
        d = np.where(np.isinf(b), 0.0, b) + rng.exponential(life, b.size)
        chans.append(np.full(b.size, c))
        born.append(b)
        dies.append(d)
    channel = np.concatenate(chans)
    n = channel.size
    baseline = np.log(settings.rate_median_hz) + settings.rate_log_sd * rng.normal(size=n)
    tuned = rng.random(n) < settings.tuned_fraction

    def draw() -> np.ndarray:
        """(N, 5) tuning coefficients of every neuron from the population's distribution."""
        depth = rng.exponential(settings.depth_mean, n) * tuned
        angle = rng.uniform(0, 2 * np.pi, n)
        return np.column_stack(
            [
                depth * np.cos(angle),
                depth * np.sin(angle),
                settings.position_depth * rng.normal(size=(n, 2)) * tuned[:, None],
                settings.speed_depth * rng.normal(size=n) * tuned,
            ]
        )

    # Stationary drift: an AR(1) over session days towards fresh draws, so a neuron's tuning
    # decorrelates with timescale drift_days and the population's strength never grows.
    coef = np.empty((days.size, n, N_COEF))
    coef[0] = draw()
    for i in range(1, days.size):
        r = np.exp(-(days[i] - days[i - 1]) / settings.drift_days)
        coef[i] = r * coef[i - 1] + np.sqrt(1 - r * r) * draw()
    # noise properties from their own stream, so the units and tuning above stay as they were
    nrng = _rng(settings, "noise", monkey)
    fano = nrng.uniform(*settings.fano_range, n)
    loading = nrng.uniform(*settings.loading_range, n)
    born_all, dies_all = np.concatenate(born), np.concatenate(dies)
    return Pool(channel, born_all, dies_all, baseline, coef, days, fano, loading)


def shared_gain(settings: TwinSettings, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n,) the session's shared log gain on the 4 ms grid: a stationary Ornstein-Uhlenbeck
    process, sd `gain_sd`, timescale `gain_tau_s` (each unit scales it by its loading)."""
    r = np.exp(-SAMPLE_S / settings.gain_tau_s)
    drive = settings.gain_sd * rng.normal(size=n)
    drive[1:] *= np.sqrt(1 - r * r)  # the first sample is drawn from the stationary law
    return lfilter([1.0], [1.0, -r], drive)


# --- one session -------------------------------------------------------------------------


def spike_train(
    rng: np.random.Generator, t: np.ndarray, log_rate: np.ndarray, fano: float = 1.0
) -> np.ndarray:
    """Spike times (s) with rate exp(log_rate) per 4 ms sample `t` (piecewise constant),
    sorted and without duplicates: Poisson counts per sample, or, for `fano` > 1, negative
    binomial counts with mean m and variance `fano` * m (shape m / (fano - 1), p = 1 / fano).
    With p fixed, sums of such counts are again negative binomial with the same p, so the
    count in any bin of whole samples has Fano factor `fano` exactly."""
    mean = np.exp(log_rate) * SAMPLE_S
    if fano > 1.0:
        counts = rng.negative_binomial(mean / (fano - 1.0), 1.0 / fano)
    else:
        counts = rng.poisson(mean)  # (T,)
    idx = np.repeat(np.arange(t.size), counts)
    return np.unique(t[idx] + rng.uniform(0, SAMPLE_S, idx.size))


def generate(name: str, settings: TwinSettings | None = None) -> tuple[MatSession, MacaqueTruth]:
    """The twin of session `name`: its `.mat` arrays and its truth."""
    settings = settings or TwinSettings()
    sess: MacaqueSession = BY_NAME[name]
    pool = monkey_pool(sess.monkey, settings)
    first = min(s.date for s in SESSIONS if s.monkey == sess.monkey)
    day = (sess.date - first).days
    d_idx = int(np.searchsorted(pool.days, day))
    rng = _rng(settings, "session", name)
    cursor, target = reaches(settings, rng)
    t0 = 10.0 + rng.uniform(0, 50)  # recordings do not start at 0 s
    t = t0 + np.arange(cursor.shape[0]) * SAMPLE_S
    lead = int(round(settings.lead_s / SAMPLE_S))
    feats = {True: features(t, cursor, lead), False: features(t, cursor, 0)}  # by M1
    gain = shared_gain(settings, _rng(settings, "gain", name), t.size)  # (T,) log gain

    alive = np.flatnonzero((pool.born <= day) & (pool.dies > day) & (pool.channel < sess.channels))
    alive = alive[np.lexsort((pool.born[alive], pool.channel[alive]))]  # by channel, age
    chan = pool.channel[alive]
    row = np.ones(alive.size, dtype=np.int64)
    for k in range(1, alive.size):
        row[k] = row[k - 1] + 1 if chan[k] == chan[k - 1] else 1
    coef = pool.coef[d_idx, alive]  # (U, 5)
    is_m1 = chan < 96
    lead_s = np.where(is_m1, settings.lead_s, 0.0)

    # unsorted threshold crossings: one weakly tuned multi-unit train per channel
    hrng = _rng(settings, "hash", name)
    hash_base = np.log(hrng.uniform(*settings.hash_hz_range, sess.channels))
    hash_coef = settings.hash_depth_scale * (
        hrng.exponential(settings.depth_mean, (sess.channels, 1))
        * np.column_stack([np.cos(a := hrng.uniform(0, 2 * np.pi, sess.channels)), np.sin(a)])
    )
    hash_coef = np.column_stack([hash_coef, np.zeros((sess.channels, 3))])  # (C, 5)

    n_rows = 1 + (int(row.max()) if row.size else 0)
    spikes: list[list[np.ndarray | None]] = [[None] * sess.channels for _ in range(n_rows)]
    srng = _rng(settings, "spikes", name)
    for c in range(sess.channels):
        f = feats[c < 96]
        spikes[0][c] = spike_train(srng, t, hash_base[c] + f @ hash_coef[c] + gain)
    for u in range(alive.size):
        f = feats[bool(is_m1[u])]
        n = alive[u]
        log_rate = pool.baseline[n] + f @ coef[u] + pool.loading[n] * gain
        spikes[int(row[u])][int(chan[u])] = spike_train(srng, t, log_rate, pool.fano[n])

    names = [f"{'M1' if c < 96 else 'S1'} {c % 96 + 1:03d}" for c in range(sess.channels)]
    finger = np.column_stack([np.full(t.size, 2.0), -cursor[:, 0] / 10, -cursor[:, 1] / 10])
    created = dt.datetime.combine(sess.date, dt.time(12)).strftime("%a %b %d %H:%M:%S %Y")
    mat = MatSession(t, cursor, finger, target, names, spikes, created)
    truth = MacaqueTruth(
        neuron_id=alive.astype(np.int64),
        channel=chan.astype(np.int64),
        row=row,
        baseline=pool.baseline[alive],
        coef=coef,
        lead_s=lead_s,
        hash_baseline=hash_base,
        hash_coef=hash_coef,
        v_ref=V_REF,
        p_ref=P_REF,
        fano=pool.fano[alive],
        loading=pool.loading[alive],
        gain_sd=settings.gain_sd,
        gain_tau_s=settings.gain_tau_s,
        reach=settings.reach_model(),
    )
    return mat, truth


def write_twin(name: str, mat_path: str | Path, truth_path: str | Path,
               settings: TwinSettings | None = None) -> None:  # fmt: skip
    """Generate the twin of `name` and write its `.mat` and truth (each atomically)."""
    mat, truth = generate(name, settings)
    write_mat(mat_path, mat)
    write_macaque_truth(truth_path, truth)
