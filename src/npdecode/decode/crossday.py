"""One decoder per monkey across days (the macaque reaching data set, issue 23).

A monkey's reaching sessions (`group_by_subject`) share one `MultiSessionDecoder`: a
linear read-in per session into `multisession.latent` features per bin, one temporal core
(`train.<multisession.core>`'s architecture) with a 2-D regression head. It is trained on
every session's training windows with early stopping on their pooled validation windows
(`fit_batches` under the session's `RegressionTask`), each session's target z-scored with
its own training statistics, and scored on each session's own test windows (R² with
block-bootstrap intervals). Memory is bounded by a batch: `ReachBatches` builds one
session's history windows from its counts when the batch is needed.

Transfer to a later day (`held_out_by_date`): a core trained on the monkey's earlier days
is frozen and a new read-in is fitted on k minutes of the new day's training windows only
(the strict protocol: drawn as `RegressionTask.draw_shots` draws them, normalised with the
shots' own statistics, a fixed budget of `reach.fewshot.steps` optimiser steps at
`reach.crossday.adapt_lr`), then scored on the new day's test windows.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from npdecode.decode.shared import BoundSession, readin_model
from npdecode.decode.training import (
    Batch,
    FitOptions,
    fit_batches,
    fit_fixed,
    fit_options,
    predict_logits,
    seed_everything,
)
from npdecode.errors import ParamsError
from npdecode.formats.macaque_truth import MacaqueTruth
from npdecode.formats.reach_split import ReachData
from npdecode.models.multisession import MultiSessionDecoder
from npdecode.params import Params
from npdecode.reaching.decoders import fit_shots, task_of, truth_for_units
from npdecode.sources.macaque_sessions import days_apart, session

log = logging.getLogger(__name__)

# --- groups and held-out days ---------------------------------------------------------


def group_by_subject(names: list[str]) -> dict[str, list[str]]:
    """Reach sessions per monkey, each list in date order (then name)."""
    groups: dict[str, list[str]] = {}
    for name in sorted(names, key=lambda n: (session(n).date, n)):
        groups.setdefault(session(name).monkey, []).append(name)
    return groups


def held_out_by_date(names: list[str], n_held: int = 1) -> tuple[list[str], list[str]]:
    """(earlier, held): one monkey's `n_held` latest-dated sessions held out, and the
    sessions dated strictly before all of them (a core never sees the held-out day or a
    later one; a session on the held-out date is in neither)."""
    monkeys = {session(n).monkey for n in names}
    if len(monkeys) != 1:
        raise ParamsError(f"held-out days are per monkey; {sorted(names)} mix {sorted(monkeys)}")
    ordered = sorted(names, key=lambda n: (session(n).date, n))
    held = ordered[len(ordered) - n_held :]
    first = min(session(n).date for n in held)
    earlier = [n for n in ordered if session(n).date < first]
    if not earlier or n_held < 1:
        raise ParamsError(
            f"no session of {sorted(names)} is dated before the held-out {held}: transfer to a "
            "later day needs earlier days to train a core on"
        )
    return earlier, held


def date_windows(names: list[str], days: float | None) -> list[list[str]]:
    """One monkey's sessions in date order (then name), cut wherever two consecutive ones
    are more than `days` days apart (None: one group): the groups of shared decoders."""
    ordered = sorted(names, key=lambda n: (session(n).date, n))
    if days is None or not ordered:
        return [ordered] if ordered else []
    groups = [[ordered[0]]]
    for a, b in zip(ordered, ordered[1:], strict=False):
        if days_apart(session(a), session(b)) > days:
            groups.append([])
        groups[-1].append(b)
    return groups


# --- persistent unit ids -----------------------------------------------------------------


def unit_ids(d: ReachData, truth: MacaqueTruth | None) -> np.ndarray:
    """Persistent ids of `d`'s units: the twin's neuron ids where its truth covers every
    unit, else the split's `unit_id` (`<channel>/<row>`, what a real recording offers)."""
    matched = None if truth is None else truth_for_units(truth, d.units)
    if matched is not None:
        return np.array([f"neuron/{int(n)}" for n in matched.neuron_id])
    return d.units["unit_id"].to_numpy().astype(str)


def match_columns(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(len(src),) the column in `dst` of each id in `src`, -1 where absent."""
    where = {u: j for j, u in enumerate(dst.tolist())}
    return np.array([where.get(u, -1) for u in src.tolist()], dtype=np.int64)


def matched_readin(
    model: MultiSessionDecoder, donor: MultiSessionDecoder, index: int, cols: np.ndarray
) -> None:
    """Start `model`'s read-in 0 as the donor's read-in `index` on the same units: unit j
    takes the donor's weights of its unit `cols[j]` (zeros where -1), the bias the
    donor's (`readin_init: matched`, the units' ids carry over between days)."""
    src = donor.readin(index)
    with torch.no_grad():
        w = torch.zeros_like(model.readin(0).weight)  # (D, U)
        have = torch.from_numpy(np.flatnonzero(cols >= 0))
        w[:, have] = src.weight[:, torch.from_numpy(cols[cols >= 0])].to(w.device)
        model.readin(0).weight.copy_(w)
        model.readin(0).bias.copy_(src.bias)


# --- windows and batches ----------------------------------------------------------------


def windows(
    d: ReachData,
    rows: np.ndarray,
    mean: np.ndarray,
    sd: np.ndarray,
    cols: np.ndarray | None = None,
) -> np.ndarray:
    """(N, h, U) float32 history windows ending at `rows`, z-scored with (mean, sd).

    With `cols` (U,), window unit j is session unit `cols[j]` (-1: absent, all zeros, i.e.
    at its mean): another day's decoder reads this session with its own units.
    """
    offsets = np.arange(-d.history + 1, 1)
    if cols is None:
        c = d.counts[rows[:, None] + offsets[None, :]].astype(np.float32)  # (N, h, U)
        return ((c - mean) / sd).astype(np.float32)
    out = np.zeros((len(rows), d.history, len(cols)), np.float32)
    have = np.flatnonzero(cols >= 0)
    c = d.counts[(rows[:, None] + offsets[None, :])[:, :, None], cols[have][None, None, :]]
    out[:, :, have] = (c - mean[have]) / sd[have]
    return out


def z_target(d: ReachData, rows: np.ndarray) -> np.ndarray:
    """(N, 2) float32 target at `rows`, z-scored with the session's training statistics."""
    return ((d.target()[rows] - d.target_mean) / d.target_sd).astype(np.float32)


class ReachBatches:
    """Batches for a shared reach decoder (a `training.BatchSource`): each holds one
    session's windows, built from its counts when needed; an epoch interleaves every
    session's shuffled batches in one seeded order; validation is every session's val rows."""

    def __init__(self, sessions: list[ReachData]) -> None:
        self.sessions = sessions

    def n_train(self) -> int:
        return sum(len(d.rows["train"]) for d in self.sessions)

    def n_val(self) -> int:
        return sum(len(d.rows["val"]) for d in self.sessions)

    def n_steps(self, batch_size: int) -> int:
        return sum(-(-len(d.rows["train"]) // batch_size) for d in self.sessions)

    def batch(self, s: int, split: str, idx: np.ndarray) -> Batch:
        d = self.sessions[s]
        rows = d.rows[split][idx]
        x = torch.from_numpy(windows(d, rows, d.mean, d.sd))
        return Batch((x, s), torch.from_numpy(z_target(d, rows)))

    def train_batches(
        self, batch_size: int, gen: torch.Generator, device: torch.device
    ) -> Iterator[Batch]:
        chunks: list[tuple[int, np.ndarray]] = []
        for s, d in enumerate(self.sessions):
            perm = torch.randperm(len(d.rows["train"]), generator=gen).numpy()
            chunks += [(s, perm[i : i + batch_size]) for i in range(0, len(perm), batch_size)]
        for j in torch.randperm(len(chunks), generator=gen).tolist():
            yield _to(self.batch(chunks[j][0], "train", chunks[j][1]), device)

    def val_batches(self, batch_size: int, device: torch.device) -> Iterator[Batch]:
        for s, d in enumerate(self.sessions):
            n = len(d.rows["val"])
            for i in range(0, n, batch_size):
                yield _to(self.batch(s, "val", np.arange(i, min(i + batch_size, n))), device)


def _to(b: Batch, device: torch.device) -> Batch:
    x, s = b.inputs
    return Batch((x.to(device), s), b.y.to(device))


# --- the shared decoder -----------------------------------------------------------------


def build(sessions: list[ReachData], params: Params, seed: int) -> MultiSessionDecoder:
    """Seed, then a decoder with a fresh read-in per session and a 2-D regression head."""
    hist = {d.history for d in sessions}
    if len(hist) != 1:
        raise ParamsError(f"sessions {[d.session_id for d in sessions]} differ in history {hist}")
    seed_everything(seed)
    p = params.multisession
    return MultiSessionDecoder(
        p,
        getattr(params.train, p.core).arch,  # train.lstm or train.transformer
        session_ids=tuple(d.session_id for d in sessions),
        n_units=tuple(d.n_units for d in sessions),
        n_bins=hist.pop(),
        n_classes=2,
    )


def options(params: Params, d: ReachData, **change: Any) -> FitOptions:
    """`multisession`'s optimiser and stopping settings (epochs capped at
    `reach.max_epochs`) under session `d`'s regression task."""
    opts = fit_options(params.train, params.multisession.fit, key="multisession", task=task_of(d))
    opts = dataclasses.replace(opts, max_epochs=min(opts.max_epochs, params.reach.max_epochs))
    return dataclasses.replace(opts, **change)


def train(sessions: list[ReachData], params: Params) -> tuple[MultiSessionDecoder, dict[str, Any]]:
    """One decoder over `sessions` (one session: that session's own decoder of the same
    core), early stopping on their pooled validation R² (z-scored targets)."""
    model = build(sessions, params, params.train.seed)
    source = ReachBatches(sessions)
    log.info("reach decoder on %s: %d training windows", [d.session_id for d in sessions],
             source.n_train())  # fmt: skip
    _, info = fit_batches(model, source, options(params, sessions[0]))
    return model.eval(), info  # fit_batches trains `model` in place


def predict(
    model: MultiSessionDecoder,
    index: int,
    d: ReachData,
    split: str = "test",
    norm: tuple[np.ndarray, np.ndarray] | None = None,
    target: tuple[np.ndarray, np.ndarray] | None = None,
    cols: np.ndarray | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """(N, 2) decoded target at `d`'s `split` rows, in the target's units, by read-in
    `index`; inputs normalised with `norm` (default `d`'s) and read through `cols`
    (`windows`), outputs un-z-scored with `target` (default `d`'s) statistics."""
    mean, sd = norm if norm is not None else (d.mean, d.sd)
    tm, ts = target if target is not None else (d.target_mean, d.target_sd)
    rows = d.rows[split]
    bound = BoundSession(model, index)
    out = [
        predict_logits(bound, windows(d, rows[i : i + batch_size], mean, sd, cols), batch_size)
        .cpu()
        .numpy()
        for i in range(0, len(rows), batch_size)
    ]
    z = np.concatenate(out).astype(np.float64) if out else np.zeros((0, 2))
    return z * ts + tm


def score(d: ReachData, pred: np.ndarray) -> dict[str, Any]:
    """R² per axis and overall, r, 95 % block-bootstrap intervals on `d`'s test rows."""
    return task_of(d).metrics(pred, d.y("test").astype(np.float64))


def paired(d: ReachData, a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """R²(a) - R²(b) on the same resampled test blocks: interval, p, verdict."""
    return task_of(d).paired(a, b, d.y("test").astype(np.float64))


def val_r2(model: MultiSessionDecoder, index: int, d: ReachData) -> float:
    """R² of read-in `index` on `d`'s validation rows, z-scored targets (what early
    stopping compares)."""
    z = predict(model, index, d, "val", target=(np.zeros(2), np.ones(2)))
    return task_of(d).score(torch.from_numpy(z), torch.from_numpy(z_target(d, d.rows["val"])))


def finetune(
    shared: MultiSessionDecoder, index: int, d: ReachData, params: Params
) -> tuple[MultiSessionDecoder, dict[str, Any]]:
    """Session `d`'s own decoder started from the shared one (read-in `index` and the
    core), every weight trained on d's training windows at `reach.crossday.finetune_lr`
    for at most `finetune_epochs` epochs, early stopping on d's validation rows; the
    shared weights are kept when no epoch beats them there."""
    cd = params.reach.crossday
    model = build([d], params, params.train.seed)
    with torch.no_grad():
        model.readin(0).load_state_dict(shared.readin(index).state_dict())
        model.core.load_state_dict(shared.core_state())
    start = val_r2(model.eval(), 0, d)
    opts = options(params, d, lr=cd.finetune_lr, schedule="constant",
                   max_epochs=cd.finetune_epochs, patience=min(cd.finetune_epochs, 3))  # fmt: skip
    kept = {k: v.detach().clone() for k, v in model.state_dict().items()}
    _, info = fit_batches(model, ReachBatches([d]), opts)
    if info["best_val_r2"] <= start:
        model.load_state_dict(kept)
    info = {**info, "start_val_r2": start, "kept_shared": info["best_val_r2"] <= start}
    return model.eval(), info


def r2_part(m: dict[str, Any]) -> dict[str, Any]:
    """R² and its 95 % interval out of a `score` (what the stages' score files keep)."""
    return {"r2": m["r2"], "r2_lo": m["r2_lo"], "r2_hi": m["r2_hi"]}


def session_row(d: ReachData, group: list[str]) -> dict[str, Any]:
    """What a per-session row of the across-days tables says of session `d` and the
    date-window group it was trained in (ours and POYO's, npdecode.decode.poyo_crossday)."""
    s = session(d.session_id)
    return {"session": d.session_id, "monkey": s.monkey, "date": s.date.isoformat(),
            "n_units": d.n_units, "n_test": len(d.rows["test"]), "shared_group": group}  # fmt: skip


def shared_vs_single(
    sessions: list[ReachData], params: Params
) -> tuple[dict[str, dict[str, Any]], dict[str, MultiSessionDecoder]]:
    """Per session: single (its own decoder of the same core) and shared R² on its test
    rows, and the paired gain shared - single; with `reach.crossday.finetune`, the shared
    decoder fine-tuned on the session too (`finetune`) and its paired gain over single;
    and the single-session models.

    The shared decoders are one per `date_windows` group (`reach.crossday.window_days`);
    a session alone in its group has shared = single (and no fine-tuned arm)."""
    cd = params.reach.crossday
    by_name = {d.session_id: d for d in sessions}
    groups = date_windows(list(by_name), cd.window_days)
    out: dict[str, dict[str, Any]] = {}
    singles: dict[str, MultiSessionDecoder] = {}
    for d in sessions:
        singles[d.session_id], info = train([d], params)
        out[d.session_id] = {"single_epochs": info["epochs"]}
    for group in groups:
        members = [by_name[n] for n in group]
        shared, info = train(members, params) if len(group) > 1 else (None, {})
        for i, d in enumerate(members):
            b = predict(singles[d.session_id], 0, d)
            a = b if shared is None else predict(shared, i, d)
            r = out[d.session_id]
            r.update({
                **session_row(d, group),
                "shared": score(d, a),
                "single": score(d, b),
                "gain": paired(d, a, b),
                "shared_epochs": info.get("epochs", r["single_epochs"]),
            })  # fmt: skip
            if cd.finetune and shared is not None:
                ft, ft_info = finetune(shared, i, d, params)
                f = predict(ft, 0, d)
                r.update({"finetuned": score(d, f), "finetune_gain": paired(d, f, b),
                          "finetune_epochs": ft_info["epochs"],
                          "finetune_kept_shared": ft_info["kept_shared"]})  # fmt: skip
    return {n: out[n] for n in by_name}, singles


# --- transfer to a later day ------------------------------------------------------------


def shot_rows(d: ReachData, minutes: float, seed: int, repeat: int) -> np.ndarray:
    """Sorted training rows of one draw of `minutes` of contiguous training windows
    (`RegressionTask.draw_shots`, inside runs of contiguous rows), seeded by
    (seed, minutes in ms, repeat)."""
    k = max(1, int(round(minutes * 60.0 / d.width_s)))
    task = task_of(d)
    task.check_shots([k], d.rows["train"], f"session {d.session_id}")
    rng = np.random.default_rng([seed, int(round(minutes * 60_000)), repeat])
    return d.rows["train"][task.draw_shots(d.rows["train"], k, rng)]


def shot_stats(
    d: ReachData, rows: np.ndarray
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(mean, sd) of the counts in the history windows of training rows `rows`, and of
    their targets: a new read-in's normalisation (the strict protocol: the shots' own)."""
    c = np.unique(rows[:, None] + np.arange(-d.history + 1, 1)[None, :])
    counts = d.counts[c].astype(np.float64)
    mean, sd = counts.mean(axis=0), counts.std(axis=0)
    y = d.target()[rows]
    tm, ts = y.mean(axis=0), y.std(axis=0)
    return (mean, np.where(sd > 0, sd, 1.0)), (tm, np.where(ts > 0, ts, 1.0))


def fit_readin_on_shots(
    donor: MultiSessionDecoder,
    d: ReachData,
    rows: np.ndarray,
    params: Params,
    seed: int,
    init: tuple[int, np.ndarray] | None = None,
    on_epoch: Callable[[int, torch.nn.Module], None] | None = None,
) -> tuple[MultiSessionDecoder, tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """A new read-in for `d` under the donor's frozen core, fitted on training rows `rows`
    only: inputs and targets normalised with the shots' own statistics (`shot_stats`), a
    fixed budget of about `reach.fewshot.steps` steps at `reach.crossday.adapt_lr`, last
    weights.

    `init` (donor read-in index, `match_columns` of d's units into that session's): the
    read-in starts as `matched_readin`; None: a fresh random read-in. `on_epoch`: passed
    to `fit_fixed` (bench/crossday_readin_lr.py scores every epoch with it).
    Returns the model and the (mean, sd) of its inputs and of its target.
    """
    (mean, sd), (tm, ts) = shot_stats(d, rows)
    y = d.target()[rows]
    model = readin_model(donor, d.session_id, d.n_units, seed)
    if init is not None:
        matched_readin(model, donor, *init)
    bs = params.train.batch_size
    epochs = max(1, int(round(params.reach.fewshot.steps / max(1, -(-len(rows) // bs)))))
    opts = options(params, d, lr=params.reach.crossday.adapt_lr, schedule="constant",
                   max_epochs=epochs, seed=seed)  # fmt: skip
    x = windows(d, rows, mean, sd)
    fit_fixed(BoundSession(model, 0), (x, ((y - tm) / ts).astype(np.float32)), opts, on_epoch)
    return model.eval(), (mean, sd), (tm, ts)


def scratch_later_day(
    sessions: list[ReachData], params: Params, minutes: tuple[float, ...]
) -> dict[str, Any]:
    """The baseline of transfer: on the same draws of k minutes of the monkey's latest day
    (`shot_rows`), its own decoder (`reach.models[0]`, `train.<model>`) trained from
    scratch on the shots alone (`reaching.decoders.fit_shots`: the shots' statistics,
    `reach.fewshot.steps` steps), scored on that day's test rows."""
    _, held = held_out_by_date([d.session_id for d in sessions], 1)
    target = next(d for d in sessions if d.session_id == held[0])
    fs = params.reach.fewshot
    curve: dict[str, Any] = {}
    for k in minutes:
        draws = []
        for r in range(fs.repeats):
            idx = np.searchsorted(target.rows["train"], shot_rows(target, k, fs.seed, r))
            pred = fit_shots(params.reach.models[0], target, params.train, idx, fs.steps,
                             fs.seed * 1000 + r)  # fmt: skip
            m = score(target, pred)
            draws.append({"repeat": r, **r2_part(m)})
        curve[f"{k:g}"] = {"minutes": k, "r2_mean": float(np.mean([x["r2"] for x in draws])),
                           "draws": draws}  # fmt: skip
    return {"session": target.session_id, "model": params.reach.models[0], "curve": curve}


def transfer_later_day(
    sessions: list[ReachData],
    params: Params,
    minutes: tuple[float, ...],
    full: dict[str, dict[str, Any]] | None = None,
    ids: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Transfer to one monkey's latest day (see the module docstring): per k minutes the
    R² of every draw on the held-out day's test rows, their mean, the same draws' decoder
    trained from scratch (`scratch_later_day`), and (with `full`, the `shared_vs_single`
    results) the ratio to that day's full-data single-session R².

    With `ids` (`unit_ids` per session) each new read-in starts from the latest earlier
    day's read-in on the units both days share (`matched_readin`); else it starts random.
    """
    by_name = {d.session_id: d for d in sessions}
    earlier, held = held_out_by_date(list(by_name), 1)
    target = by_name[held[0]]
    donor, info = train([by_name[n] for n in earlier], params)
    fs = params.reach.fewshot
    init = None
    if ids is not None:
        init = (len(earlier) - 1, match_columns(ids[target.session_id], ids[earlier[-1]]))
    curve: dict[str, Any] = {}
    for k in minutes:
        draws = []
        for r in range(fs.repeats):
            rows = shot_rows(target, k, fs.seed, r)
            seed = fs.seed * 1000 + r
            model, norm, tstats = fit_readin_on_shots(donor, target, rows, params, seed, init)
            m = score(target, predict(model, 0, target, norm=norm, target=tstats))
            draws.append({"repeat": r, "n_shots": len(rows), **r2_part(m)})
        mean = float(np.mean([x["r2"] for x in draws]))
        entry: dict[str, Any] = {"minutes": k, "r2_mean": mean, "draws": draws}
        if full is not None:
            entry["ratio_to_single"] = mean / full[target.session_id]["single"]["r2"]
        curve[f"{k:g}"] = entry
    scratch = scratch_later_day(sessions, params, minutes)["curve"]
    for key, e in curve.items():
        e["scratch_r2_mean"] = scratch[key]["r2_mean"]
        e["scratch_draws"] = scratch[key]["draws"]
    return {"session": target.session_id, "core_sessions": earlier, "core_epochs": info["epochs"],
            "protocol": "strict", "readin_init": "random" if init is None else f"matched to {earlier[-1]}",
            "curve": curve}  # fmt: skip
