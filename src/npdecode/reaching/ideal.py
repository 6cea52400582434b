"""The twin's ideal decoder: a particle filter with the true generative model (the ceiling).

The twin (`npdecode.sources.macaque_twin`) draws behaviour from a known reach model: the
cursor rests on a grid target, and after a still period (hold, optional rest, reaction)
moves to a new grid target along a minimum-jerk path whose duration is fixed by the
distance. Each sorted unit's count over any bin of whole 4 ms samples is negative binomial
with mean `sum_k w_k exp(b_u + c_u . f(x_{k + L_u}) + l_u g_k)` and Fano factor `fano_u`
(f = scaled velocity, position and speed; L_u the unit's lead; g a shared log gain, an
Ornstein-Uhlenbeck process). The truth file holds every one of these: b, c, L, fano, l,
the gain's sd and timescale, and the reach model.

This filter is the Bayes filter of that model, computed by sequential Monte Carlo (a
bootstrap particle filter, Gordon et al. 1993): each particle is one hypothesis of the
current and previous reach (start, goal, onset, duration), of when the next one starts, and
of the gain. Particles are propagated by the true reach model, so a particle's trajectory
is a real minimum-jerk reach between grid targets and its velocity is exactly zero while
it holds (a still particle's next onset is redrawn every bin from the still-period law
given that it has not yet come, so resampling during a hold never leaves every particle
waiting past the true onset); they are weighted by the exact negative binomial likelihood
of every unit's count (the model's only approximations: within a bin the rate is taken at
the bin-mean kinematics, and the gain is constant over a bin). M1 units fire `L` before the kinematics they encode,
so particles run `L` ahead and the counts of bins <= j weigh the trajectory up to
x_{j + L}; the estimate of bin j is the posterior mean of bin j's kinematics given those
counts (causal, like the Wiener and Kalman filters). The posterior mean is the estimate of
least squared error, so no causal decoder of the same counts can have a higher expected
R², beyond the particles' Monte Carlo error and those approximations; the twin test
(`tests/reaching/test_ideal.py`) checks that it beats the Wiener filter by a paired margin.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln

from npdecode.formats.macaque_truth import MacaqueTruth

SAMPLE_S = 0.004  # the twin's sample grid (`npdecode.sources.macaque_twin.SAMPLE_S`)
FAR_PAST = -(10**9)  # onset of a segment that ended before the filter started


def min_jerk(s: np.ndarray) -> np.ndarray:
    """Minimum-jerk path fraction at normalised time s in [0, 1] (Flash & Hogan 1985)."""
    return 10 * s**3 - 15 * s**4 + 6 * s**5


class _Particles:
    """N reach hypotheses: current segment (a -> g, onset k0, length m samples), the previous
    one (for samples before k0), when the hand stops (`stop`) and next starts (`nxt`), and
    the shared log gain."""

    def __init__(self, n: int, grid: np.ndarray, start: int, rng: np.random.Generator,
                 still: np.ndarray, gain_sd: float) -> None:  # fmt: skip
        at = rng.choice(grid, (n, 2))
        self.a, self.g, self.pa, self.pg = at, at.copy(), at.copy(), at.copy()
        self.k0 = np.full(n, FAR_PAST, dtype=np.int64)
        self.pk0 = self.k0.copy()
        self.m = np.ones(n, dtype=np.int64)
        self.pm = self.m.copy()
        # the still period began somewhere before the start (`decode` draws its end)
        self.stop = start - (rng.random(n) * still).astype(np.int64)
        self.nxt = self.stop + still
        self.gain = gain_sd * rng.normal(size=n)

    def take(self, idx: np.ndarray) -> None:
        """Keep the particles `idx` (resampling)."""
        for k in ("a", "g", "pa", "pg", "k0", "pk0", "m", "pm", "stop", "nxt", "gain"):
            setattr(self, k, getattr(self, k)[idx])

    def pos(self, k: int) -> np.ndarray:
        """(N, 2) cursor position of every particle at sample k."""
        cur = (k >= self.k0)[:, None]
        s = min_jerk(np.clip((k - self.k0 + 1) / self.m, 0.0, 1.0))[:, None]
        sp = min_jerk(np.clip((k - self.pk0 + 1) / self.pm, 0.0, 1.0))[:, None]
        return np.where(cur, self.a + (self.g - self.a) * s, self.pa + (self.pg - self.pa) * sp)


class _ReachModel:
    """The truth's reach model, drawing in samples exactly as the twin's generator does."""

    def __init__(self, truth: MacaqueTruth) -> None:
        r = truth.reach_params()
        self.r = r
        self.grid = (np.arange(8) - 3.5) * r["grid_mm"]

    def _steps(self, x: np.ndarray) -> np.ndarray:
        """Seconds -> whole samples, at least one (the generator's rounding)."""
        return np.maximum(1, np.rint(x / SAMPLE_S)).astype(np.int64)

    def still(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """(n,) samples from a reach's end to the next onset: hold, rests, reaction."""
        r = self.r
        out = self._steps(rng.uniform(r["hold_lo"], r["hold_hi"], n))
        rest = rng.random(n) < r["rest_p"]
        out += np.where(rest, self._steps(rng.exponential(r["rest_mean_s"], n)), 0)
        long = rng.random(n) < r["long_rest_p"]
        out += np.where(long, self._steps(rng.uniform(r["long_rest_lo"], r["long_rest_hi"], n)), 0)
        return out + self._steps(rng.uniform(r["reaction_lo"], r["reaction_hi"], n))

    def start(self, p: _Particles, idx: np.ndarray, rng: np.random.Generator) -> None:
        """Particles `idx` start their next reach at their onset `nxt`."""
        p.pa[idx], p.pg[idx], p.pk0[idx], p.pm[idx] = p.a[idx], p.g[idx], p.k0[idx], p.m[idx]
        p.a[idx] = p.g[idx]
        goal = rng.choice(self.grid, (idx.size, 2))
        same = np.all(goal == p.a[idx], axis=1)
        while same.any():  # a new target differs from the current one
            goal[same] = rng.choice(self.grid, (int(same.sum()), 2))
            same = np.all(goal == p.a[idx], axis=1)
        p.g[idx] = goal
        dist = np.linalg.norm(goal - p.a[idx], axis=1)
        p.k0[idx] = p.nxt[idx]
        p.m[idx] = self._steps(self.r["move_base_s"] + dist / self.r["move_speed_mm_s"])
        p.stop[idx] = p.k0[idx] + p.m[idx]
        p.nxt[idx] = p.stop[idx] + self.still(rng, idx.size)


def _bin_kinematics(p: _Particles, lo: int, n: int) -> np.ndarray:
    """(N, 4) [px, py, vx, vy] of every particle over samples lo .. lo + n - 1: position at
    the bin's middle, velocity the mean of the central differences (`np.gradient`)."""
    xa, xb, xc, xd = p.pos(lo - 1), p.pos(lo), p.pos(lo + n - 1), p.pos(lo + n)
    vel = (xc + xd - xa - xb) / (2 * SAMPLE_S * n)
    return np.column_stack([(xb + xc) / 2, vel])


def _runs(rows: np.ndarray) -> list[tuple[int, int]]:
    """Consecutive runs [start, stop) of the sorted bin indices `rows`."""
    rows = np.unique(rows)
    cut = np.flatnonzero(np.diff(rows) != 1) + 1
    return [(int(r[0]), int(r[-1]) + 1) for r in np.split(rows, cut) if r.size]


def decode(
    counts: np.ndarray,
    truth: MacaqueTruth,
    width_s: float,
    states: np.ndarray | None = None,
    train: np.ndarray | None = None,
    *,
    rows: np.ndarray | None = None,
    particles: int = 2000,
    burn_s: float = 5.0,
    seed: int = 0,
) -> np.ndarray:
    """(B, 4) posterior-mean [px, py, vx, vy] of every bin j from the counts of bins <= j.

    Args:
        counts: (B, U) sorted-unit counts in bins of `width_s` from the session's first
            sample, columns in the truth's unit order.
        truth: the session's truth (tuning, leads, noise and reach model).
        width_s: bin width, s (whole 4 ms samples).
        states, train: unused (the true model needs no fitting); kept so callers of the
            earlier, fitted filter work unchanged.
        rows: bins to estimate (default all); each run of consecutive rows is filtered
            from `burn_s` before it, and other bins are NaN. Decoding only the test block
            costs a tenth of the session.
        particles: number of particles; seed: their random stream (same seed, same bytes).
    """
    n = int(round(width_s / SAMPLE_S))
    if n < 1 or abs(n * SAMPLE_S - width_s) > 1e-9:
        raise ValueError(f"bin width {width_s} s is not a whole number of 4 ms samples")
    b_count = counts.shape[0]
    rows = np.arange(b_count) if rows is None else np.asarray(rows)
    counts = counts.astype(np.float64)
    model = _ReachModel(truth)
    rng = np.random.default_rng(seed)
    leads = np.rint(np.asarray(truth.lead_s) / SAMPLE_S).astype(np.int64)
    groups = [(int(lead), np.flatnonzero(leads == lead)) for lead in np.unique(leads)]
    ahead = int(leads.max()) if leads.size else 0
    base = truth.baseline + np.log(width_s)  # (U,) log mean count at zero kinematics
    c, vr, pr = truth.coef, truth.v_ref, truth.p_ref
    fano = np.asarray(truth.fano, np.float64)
    nb = fano > 1 + 1e-9
    # -log p(n = 0) per unit of mean: log(fano) / (fano - 1), 1 for a Poisson unit
    kappa = np.where(nb, np.log(np.where(nb, fano, 2.0)) / np.where(nb, fano - 1, 1.0), 1.0)
    rho = np.exp(-width_s / truth.gain_tau_s)
    gain_step = truth.gain_sd * np.sqrt(1 - rho * rho)
    burn = int(round(burn_s / width_s))
    still_sorted = np.sort(model.still(rng, 100_000))  # the still period's law, by sampling
    out = np.full((b_count, 4), np.nan)

    for first, stop in _runs(rows):
        start = max(0, first - burn)
        p = _Particles(particles, model.grid, start * n, rng, model.still(rng, particles),
                       truth.gain_sd)  # fmt: skip
        logw = np.zeros(particles)
        for j in range(start, stop):
            frontier = (j + 1) * n + ahead
            # A still particle's next onset lies beyond the last frontier, which is all the
            # counts so far say of it: draw it afresh from the model given that, so the
            # particles never all wait for one late onset (an exact refresh: the weights do
            # not depend on it). Then particles whose onset falls before the frontier move.
            waited = j * n + ahead - p.stop
            lo = np.searchsorted(still_sorted, waited, side="right")
            pick = lo + (rng.random(particles) * (still_sorted.size - lo)).astype(np.int64)
            beyond = still_sorted[np.minimum(pick, still_sorted.size - 1)]
            p.nxt = p.stop + np.where(lo < still_sorted.size, beyond, waited + 1)
            due = np.flatnonzero(p.nxt <= frontier)
            while due.size:
                model.start(p, due, rng)
                due = np.flatnonzero(p.nxt <= frontier)
            if j > start:
                p.gain = rho * p.gain + gain_step * rng.normal(size=particles)
            eta = np.empty((particles, counts.shape[1]))
            for lead, cols in groups:
                kin = _bin_kinematics(p, j * n + lead, n)
                speed = np.hypot(kin[:, 2], kin[:, 3])[:, None]
                f = np.column_stack([kin[:, 2:] / vr, kin[:, :2] / pr, speed / vr])  # (N, 5)
                eta[:, cols] = base[cols] + f @ c[cols].T
            eta += p.gain[:, None] * truth.loading
            mu = np.exp(eta)  # (N, U) mean counts
            ll = -(mu @ kappa)
            hit = np.flatnonzero(counts[j] > 0)
            if hit.size:
                nbh, poh = hit[nb[hit]], hit[~nb[hit]]
                if nbh.size:
                    r = mu[:, nbh] / (fano[nbh] - 1)
                    ll += (gammaln(counts[j, nbh] + r) - gammaln(r)).sum(axis=1)
                if poh.size:
                    ll += eta[:, poh] @ counts[j, poh]
            logw += ll
            w = np.exp(logw - logw.max())
            w /= w.sum()
            if j >= first:
                out[j] = w @ _bin_kinematics(p, j * n, n)
            if 1.0 / (w @ w) < particles / 2:  # systematic resampling (Kitagawa 1996)
                edges = (rng.random() + np.arange(particles)) / particles
                p.take(np.minimum(np.searchsorted(np.cumsum(w), edges), particles - 1))
                logw = np.zeros(particles)
            else:
                logw = np.log(np.maximum(w, 1e-300))
    return out
