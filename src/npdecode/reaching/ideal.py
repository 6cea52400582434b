"""The twin's ideal decoder: a point-process filter with the true tuning (the ceiling).

Each sorted unit's count in bin k is Poisson with mean `w exp(b_u + c_u . f(x_{k + L_u}))`
(`npdecode.sources.macaque_twin`: f = scaled velocity, position and speed; L_u the unit's
lead in bins). The filter knows b, c and L exactly (from the truth file), realigns each
unit's counts by its lead (M1 counts from L bins earlier, so it stays causal), and runs
the Laplace-Gaussian point-process filter of Eden et al. (2004) on the state
x = [px, py, vx, vy] with a linear-Gaussian autoregressive kinematic prior fitted by
least squares on the training bins' true kinematics.

Why it is the ceiling: with the true observation model, the Bayes filter is the best a
causal decoder can do; this one is that filter up to its Gaussian posterior approximation
and its linear-Gaussian prior on kinematics (real reaches go to grid targets along
minimum-jerk paths, structure a flexible decoder could learn beyond a linear prior). So
decoders should score at or below it; one that beats it by more than the interval shows
that approximation gap, not a leak.
"""

from __future__ import annotations

import numpy as np

from npdecode.formats.macaque_truth import MacaqueTruth


def fit_prior(states: np.ndarray, train: np.ndarray, order: int) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares AR(`order`) kinematics: x_{k+1} = A [x_k, ..., x_{k-order+1}] + e.

    Fitted on every run of `order` + 1 consecutive training bins (no run crosses a split
    edge). Returns A (D, D * order) and the residual covariance Q (D, D). Reaches are
    smooth (minimum jerk), so a few past bins predict the next far better than one.
    """
    ok = np.zeros(states.shape[0] + 1, dtype=bool)
    ok[train] = True
    ends = np.array([k for k in train if k >= order and ok[k - order : k + 1].all()])
    now = np.hstack([states[ends - 1 - i] for i in range(order)])  # (N, D * order)
    nxt = states[ends]  # (N, D)
    a_t, *_ = np.linalg.lstsq(now, nxt, rcond=None)  # (D * order, D)
    q = np.atleast_2d(np.cov((nxt - now @ a_t).T))
    # kinematics that are exact functions of each other (position summing velocity) leave
    # Q singular; a jitter far below any real variance keeps the filter's inverses finite
    return a_t.T, q + 1e-3 * np.mean(np.diag(q)) * np.eye(q.shape[0])


def lead_groups(lead_s: np.ndarray, width_s: float) -> list[tuple[np.ndarray, int, float]]:
    """Units grouped by lead: (columns, whole bins `fl`, fraction `frac`).

    A unit leading by L = lead / width = fl + frac bins fires in bin j at the rate of the
    kinematics over [j + L, j + L + 1): a weight 1 - frac on x_{j+fl} and frac on x_{j+fl+1}.
    """
    out = []
    for lead in np.unique(lead_s):
        cols = np.flatnonzero(lead_s == lead)
        steps = lead / width_s
        fl = int(np.floor(steps + 1e-9))
        out.append((cols, fl, max(0.0, float(steps - fl))))
    return out


def _jacobian(y: np.ndarray, vr: float, pr: float) -> tuple[np.ndarray, np.ndarray]:
    """Features f(y) (5,) of kinematics y = [px, py, vx, vy] and df/dy (5, 4)."""
    speed = max(float(np.hypot(y[2], y[3])), 1e-6)
    f = np.array([y[2] / vr, y[3] / vr, y[0] / pr, y[1] / pr, speed / vr])
    jac = np.array(
        [
            [0, 0, 1 / vr, 0],
            [0, 0, 0, 1 / vr],
            [1 / pr, 0, 0, 0],
            [0, 1 / pr, 0, 0],
            [0, 0, y[2] / (speed * vr), y[3] / (speed * vr)],
        ]
    )
    return f, jac


NEWTON_STEPS = 3
MAX_STEP_SD = 3.0
# A log rate above this (e^30 spikes per bin) is clipped: a diverging trial step must not overflow.
MAX_LOG_RATE = 30.0


def decode(
    counts: np.ndarray,
    truth: MacaqueTruth,
    width_s: float,
    states: np.ndarray,
    train: np.ndarray,
) -> np.ndarray:
    """(B, 4) estimates of [px, py, vx, vy] at every bin j from the counts of bins <= j.

    Spikes lead the kinematics, so the counts up to bin j inform x up to x_{j+m} (m the
    longest lead, in bins, rounded up). The state is the window s_j = [x_{j+m}, ..., x_j]
    (a fixed-lag smoother): bin j's counts update the window, and its oldest element is
    the estimate of x_j, causal in the counts. Each update finds the posterior mode by
    `NEWTON_STEPS` Newton steps (the Laplace-Gaussian filter, Koyama et al. 2010) and takes
    the inverse Hessian there as the covariance.

    Args:
        counts: (B, U) sorted-unit counts, columns in the truth's unit order.
        truth: the session's truth.
        width_s: bin width, s.
        states: (B, 4) true [px, py, vx, vy] of every bin; only the rows `train` are read,
            to fit the kinematic prior (`fit_prior`, order = the window length).
    """
    groups = lead_groups(truth.lead_s, width_s)
    m = max(fl + (frac > 0) for _, fl, frac in groups)
    dim = 4 * (m + 1)
    a, q = fit_prior(states, train, m + 1)  # (4, dim): the next bin from the whole window
    # window dynamics: the newest block advances by A, the others shift one place older
    f_mat = np.zeros((dim, dim))
    f_mat[:4] = a
    f_mat[4:, :-4] = np.eye(dim - 4)
    q_win = np.zeros((dim, dim))
    q_win[:4, :4] = q
    # rows selecting each group's kinematics from the window: x_{j+i} is block m - i
    mixes = []
    for cols, fl, frac in groups:
        mix = np.zeros((4, dim))
        mix[:, 4 * (m - fl) : 4 * (m - fl) + 4] = (1 - frac) * np.eye(4)
        if frac > 0:
            mix[:, 4 * (m - fl - 1) : 4 * (m - fl)] = frac * np.eye(4)
        mixes.append((cols, mix))
    base = truth.baseline + np.log(width_s)  # (U,)
    c = truth.coef  # (U, 5)
    vr, pr = truth.v_ref, truth.p_ref
    # start from the stationary joint distribution of a window (the training windows'
    # mean and covariance): independent blocks would let the first bins disagree
    ok = np.zeros(states.shape[0], dtype=bool)
    ok[train] = True
    ends = np.array([k for k in train if k >= m and ok[k - m : k + 1].all()])
    windows = np.hstack([states[ends - i] for i in range(m + 1)])  # (N, dim), newest first
    x = windows.mean(axis=0)
    p = np.cov(windows.T) + 1e-3 * np.mean(np.diag(q)) * np.eye(dim)
    spread_info = np.linalg.inv(p)
    out = np.zeros((counts.shape[0], 4))
    counts = counts.astype(np.float64)

    def terms(x: np.ndarray, n: np.ndarray, prior_x: np.ndarray, prior_info: np.ndarray
              ) -> tuple[float, np.ndarray, np.ndarray]:  # fmt: skip
        """Log posterior (up to a constant), its gradient and negative Hessian at x."""
        d = x - prior_x
        logp = -0.5 * float(d @ prior_info @ d)
        grad = -prior_info @ d
        hess = prior_info.copy()
        for cols, mix in mixes:
            f, jac = _jacobian(mix @ x, vr, pr)
            g = c[cols] @ jac @ mix  # (U_g, dim) gradient of each log rate
            eta = np.minimum(base[cols] + c[cols] @ f, MAX_LOG_RATE)  # (U_g,)
            lam = np.exp(eta)
            logp += float(n[cols] @ eta - lam.sum())
            grad += g.T @ (n[cols] - lam)
            hess += (g * lam[:, None]).T @ g  # Fisher information of this bin
        return logp, grad, hess

    for j in range(counts.shape[0]):
        if j:
            x = f_mat @ x
            p = f_mat @ p @ f_mat.T + q_win
        prior_info = np.linalg.inv(p)
        prior_x = x.copy()
        logp, grad, hess = terms(x, counts[j], prior_x, prior_info)
        for _ in range(NEWTON_STEPS):
            step = np.linalg.solve(hess, grad)
            # trust region: at most MAX_STEP_SD sd of the kinematics' stationary spread per
            # step, so a step cannot leap to a far basin of the non-concave posterior (the
            # speed term is not concave) yet can follow a reach's onset within one bin
            size = float(np.sqrt(step @ spread_info @ step))
            if size > MAX_STEP_SD:
                step = step * (MAX_STEP_SD / size)
            for _ in range(8):  # damped: halve a step that lowers the posterior
                trial = terms(x + step, counts[j], prior_x, prior_info)
                if trial[0] >= logp:
                    break
                step = step / 2
            else:
                break  # no ascent along the Newton direction: x is the mode
            x = x + step
            logp, grad, hess = trial
        p = np.linalg.inv(hess)
        out[j] = x[-4:]
    return out
