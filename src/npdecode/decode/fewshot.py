"""The few-shot protocol (`fewshot.protocol`, docs/fewshot.md): what the learner of one draw
(k presentations per image) may see of a session, and how it is fitted.

`shot_view` is what one draw's learner may see, `fit_shot_learners` trains learners on
their views; the few-shot stage (`fit_on_shots`: "fit one learner on these shots") and
few-shot transfer to a new mouse (`npdecode.decode.shared.fit_readins`: a new read-in on a
frozen shared core, with its own budget `multisession.adapt_epochs`) both go through
them, inside the one loop over draws (`fewshot_curve`, below: the task draws the shots and
scores each draw, `npdecode.decode.task`).

- strict (default): the learner sees its k*C labelled shots and nothing else: the per-unit
  normalisation (and ST-GAT's unit graph) are fitted on the shots, there is no validation
  data, and deep models train for a fixed budget of `fewshot.steps` optimiser steps (whole
  epochs, at least that many steps, at most the model's own `max_epochs`: `strict_epochs`;
  chosen once on other sessions with `bench/fewshot_budget.py`) and keep their last
  weights. The draws of one k may train as one batch (`fewshot.batch_draws`,
  `npdecode.decode.batched`).
- transductive (the old behaviour, as a named option): the shots are the training set, but
  normalisation and the unit graph come from the whole training split, and deep models stop
  early on the whole validation split (at most `fewshot.max_epochs`, `fewshot.patience`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from npdecode.decode.batched import fit_fixed_batched
from npdecode.decode.pool import DrawPool
from npdecode.decode.session import (
    build_for_session,
    eval_batch,
    split_logits,
    task_of,
    train_model,
)
from npdecode.decode.task import ClassificationTask, Task
from npdecode.decode.training import FitOptions, fit, fit_fixed, fit_options, resolve_device
from npdecode.evaluation import mean_interval
from npdecode.formats.split import SessionData, Split
from npdecode.models import DEEP
from npdecode.params import FewshotParams, FitParams, GraphParams, TrainParams
from npdecode.preprocess import train_statistics, unit_graph

log = logging.getLogger(__name__)


def fewshot_train(train: TrainParams, name: str, fs: FewshotParams, seed: int) -> TrainParams:
    """`train` for one transductive few-shot draw: the draw's seed, and for deep models the
    few-shot epoch cap and patience (k*119 samples converge in fewer epochs)."""
    if name not in DEEP:
        return dataclasses.replace(train, seed=seed)
    section = train.deep(name)
    budget: Any = dataclasses.replace(section, fit=fewshot_budget(section.fit, fs))
    return dataclasses.replace(train, seed=seed, **{name: budget})


def fewshot_budget(fit_params: FitParams, fs: FewshotParams) -> FitParams:
    """`fit_params` capped at `fewshot.max_epochs` and `fewshot.patience` (transductive)."""
    return dataclasses.replace(
        fit_params,
        max_epochs=min(fit_params.max_epochs, fs.max_epochs),
        patience=min(fit_params.patience, fs.patience),
    )


def strict_epochs(max_epochs: int, fs: FewshotParams, n_train: int, batch_size: int) -> int:
    """Epochs a strict learner with `n_train` shots trains: the fewest whole epochs of
    `batch_size` that make `fewshot.steps` optimiser steps, at most `max_epochs` (the model's
    own cap). A step budget gives every k the same optimisation: k = 1 (2 steps an epoch at
    119 shots) needs many more epochs than k = 10 (19)."""
    steps_per_epoch = -(-n_train // batch_size)
    return max(1, min(max_epochs, -(-fs.steps // steps_per_epoch)))


# --- the few-shot protocol ----------------------------------------------------------------


def shot_statistics(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-unit (mean, sd) of (P, T, U) counts over presentations and bins, as float32.

    A unit that is constant across the shots gets sd = inf: its z-score is 0 everywhere, as
    if dropped (the split stage drops units constant over the whole training split)."""
    varying, mean, sd = train_statistics(X)
    return mean.astype(np.float32), np.where(varying, sd, np.inf).astype(np.float32)


def shot_view(
    data: SessionData, idx: np.ndarray, protocol: str, graph: GraphParams | None = None
) -> SessionData:
    """What the learner of one few-shot draw may see of `data`: the training presentations
    `idx` (its shots) as its training split, and the test split it is scored on.

    strict: no validation split (empty), per-unit statistics from the shots and, when
    `graph` is given (ST-GAT), the unit graph rebuilt from the shots. transductive: the
    session's validation split, statistics and graph, as the split stage fitted them.
    """
    shots = data.train.subset(idx)
    if protocol == "transductive":
        return dataclasses.replace(data, train=shots)
    if protocol != "strict":
        raise ValueError(f"unknown few-shot protocol {protocol!r}")
    mean, std = shot_statistics(shots.X)
    view = dataclasses.replace(data, train=shots, val=_empty_like(data.val), mean=mean, std=std)
    if graph is not None:
        edge_index, edge_weight = unit_graph(shots.X, data.units, graph)
        view = dataclasses.replace(view, edge_index=edge_index, edge_weight=edge_weight)
    return view


def _empty_like(split: Split) -> Split:
    return Split(
        split.X[:0].copy(), split.y[:0].copy(), split.presentation_id[:0].copy()
    )  # (0, T, U): nothing to read, no labels


# inputs(view, split) -> (x, y): what a model is trained on for one split of its view
Inputs = Callable[[SessionData, str], tuple[np.ndarray, np.ndarray]]


def normalised(view: SessionData, split: str) -> tuple[np.ndarray, np.ndarray]:
    """A split of `view` z-scored with the view's statistics, and its labels."""
    part = getattr(view, split)
    return view.normalise(part.X), part.y


def shot_options(
    fit_params: FitParams, train: TrainParams, fs: FewshotParams, n_train: int, task: Task
) -> FitOptions:
    """The optimiser settings and budget of a scratch deep learner on `n_train` shots under
    `fs.protocol`: strict, a fixed `strict_epochs` budget; transductive, early stopping
    within `fewshot.max_epochs` / `patience`. (A new read-in on a frozen core has its own
    budget: `npdecode.decode.shared.readin_options`.)"""
    if fs.protocol == "strict":
        epochs = strict_epochs(fit_params.max_epochs, fs, n_train, train.batch_size)
        return fit_options(train, dataclasses.replace(fit_params, max_epochs=epochs), task=task)
    return fit_options(train, fewshot_budget(fit_params, fs), task=task)


def fit_shot_learners(
    models: Sequence[nn.Module],
    views: list[SessionData],
    seeds: list[int],
    inputs: Inputs,
    opts: FitOptions,
    fs: FewshotParams,
    train: TrainParams,
) -> list[nn.Module]:
    """Train deep `models` (`model(x)`), one per draw, each on its `view` (`shot_view`)
    under `fs.protocol`, with options `opts` (`shot_options`, or a read-in's budget) and
    seed `seeds[i]`.

    The one training step of the few-shot protocol, for scratch models and transfer's new
    read-ins alike: strict trains `opts.max_epochs` epochs on the shots alone and keeps the
    last weights (no validation data); transductive stops early on the view's validation
    split. Returns the trained models (in place), in eval mode.
    """
    per_draw = [dataclasses.replace(opts, seed=seed) for seed in seeds]
    batchable = all(getattr(m, "batchable", True) for m in models)
    if fs.protocol == "strict" and batch_draws(fs, train) and batchable and len(models) > 1:
        fit_fixed_batched(list(models), [inputs(v, "train") for v in views], per_draw)
        return list(models)
    for i, (model, view, o) in enumerate(zip(models, views, per_draw, strict=True), start=1):
        if fs.protocol == "transductive":
            fit(model, inputs(view, "train"), inputs(view, "val"), o)
        elif fs.protocol == "strict":
            fit_fixed(model, inputs(view, "train"), o)
        else:
            raise ValueError(f"unknown few-shot protocol {fs.protocol!r}")
        # progress within a k: a strict draw trains silently for up to a minute on a CPU
        log.info("draw %d / %d of this k trained (%d shots)", i, len(models), len(view.train))
    return [m.eval() for m in models]


def batch_draws(fs: FewshotParams, train: TrainParams) -> bool:
    """Whether strict deep learners of one k train as one batch (`fewshot.batch_draws`)."""
    if fs.batch_draws == "auto":
        return resolve_device(train.device).type == "cuda"
    return fs.batch_draws == "on"


def fit_on_shots(
    name: str, views: list[SessionData], train: TrainParams, fs: FewshotParams, seeds: list[int]
) -> list[nn.Module]:
    """Fit one single-session model `name` per draw on its view (`shot_view`); see
    `fit_shot_learners` for the protocol. This is "fit one learner on these shots"."""
    if not views:
        return []
    if name == "logreg" or fs.protocol == "transductive":
        # logreg reads only the training split of its view; transductive is the old code path
        draw_train = [fewshot_train(train, name, fs, seed) for seed in seeds]
        return [train_model(name, view, draw_train[i])[0] for i, view in enumerate(views)]
    # the protocol's settings first (this module), then the models (decode.session)
    fit_params = train.deep(name).fit
    opts = shot_options(fit_params, train, fs, len(views[0].train), task_of(views[0]))
    models = [
        build_for_session(name, view, dataclasses.replace(train, seed=seed))
        for view, seed in zip(views, seeds, strict=True)
    ]
    return fit_shot_learners(models, views, seeds, normalised, opts, fs, train)


def protocol_detail(
    name: str,
    fs: FewshotParams,
    train: TrainParams,
    fit_params: FitParams | None,
    n_classes: int,
) -> dict[str, str]:
    """What a few-shot learner saw and how it was trained, in words, for the result JSON."""
    budget = fewshot_budget(fit_params, fs) if fit_params is not None else None
    if fs.protocol == "strict":
        batched = (
            budget is not None
            and fs.repeats > 1
            and batch_draws(fs, train)
            and getattr(DEEP.get(name), "batchable", True)
        )
        epochs = ", ".join(
            f"k={k}: {strict_epochs(fit_params.max_epochs, fs, k * n_classes, train.batch_size)}"
            for k in fs.shots
            if fit_params is not None
        )
        out = {
            "draws": (
                "the draws of each k trained as one batch (npdecode.decode.batched)"
                if batched
                else "each draw trained on its own"
            ),
            "labels": "the k presentations per image of the draw (its shots) and nothing else",
            "normalisation": "per-unit mean and sd of the shots",
            "stopping": (
                f"a fixed budget of {fs.steps} optimiser steps (fewshot.steps) in whole epochs, "
                f"at most the model's max_epochs ({epochs} epochs), last weights; "
                "no validation data"
                if budget is not None
                else "none (fitted to convergence)"
            ),
        }
        if name == "stgat":
            out["unit_graph"] = "kNN graph (split.graph) on the correlation of the shots"
        return out | _transfer_core(name)
    out = {
        "labels": (
            "the shots, plus the whole validation split for early stopping"
            if budget is not None
            else "the shots"
        ),
        "normalisation": "per-unit mean and sd of the whole training split (split stage)",
        "stopping": (
            f"early stopping on the validation split, at most {budget.max_epochs} epochs, "
            f"patience {budget.patience}"
            if budget is not None
            else "none (fitted to convergence)"
        ),
    }
    if name == "stgat":
        out["unit_graph"] = "the whole training split's graph (split stage)"
    return out | _transfer_core(name)


def _transfer_core(name: str) -> dict[str, str]:
    if name != "transfer":
        return {}
    return {"core": "trained on the other sessions' labelled data, frozen; only the read-in fits"}


# --- few-shot draws -----------------------------------------------------------------------


@dataclass(frozen=True)
class Draw:
    """One few-shot draw: k presentations per class, repeat `repeat`, from seed `seed`."""

    k: int
    repeat: int
    seed: int  # seeds the choice of presentations (numpy accepts any size)

    @property
    def train_seed(self) -> int:
        """The draw's seed for model init, dropout and batch order (`train.seed` is < 2**31)."""
        return self.seed % 2**31


def draw_seed(base: int, k: int, repeat: int) -> int:
    """The seed of one few-shot draw: independent across k and repeats, fixed by `base`."""
    return int(np.random.SeedSequence([base, k, repeat]).generate_state(1)[0])


def check_shots(
    shots: Sequence[int],
    y: np.ndarray,
    n_classes: int,
    where: str,
    frames: np.ndarray | None = None,
) -> None:
    """Refuse a k larger than the training presentations some class has (ParamsError);
    `frames` (C,) names each class's image in the message (`ClassificationTask.check_shots`)."""
    ClassificationTask(n_classes, frames).check_shots(shots, y, where)


def sample_shots(y: np.ndarray, n_classes: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of k presentations per class, sorted (`ClassificationTask.draw_shots`)."""
    return ClassificationTask(n_classes).draw_shots(y, k, rng)


def summarise_draws(runs: list[dict], task: Task | None = None) -> dict:
    """Mean, sd and the 95 % interval of the mean (over draws; None with a single draw) of
    the task's test score for one k (accuracy by default), plus every draw."""
    score = task.summary_score if task is not None else (lambda m: float(m["accuracy"]))
    acc = np.array([score(x) for x in runs])
    lo, hi = mean_interval(acc)  # nan for a single draw: written as null (JSON has no nan)
    return {
        "mean": float(acc.mean()),
        "sd": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
        "mean_lo": lo if np.isfinite(lo) else None,
        "mean_hi": hi if np.isfinite(hi) else None,
        **{
            f"{name}_mean": float(np.mean([x[name] for x in runs]))
            for name in ("top5", "balanced_accuracy")
            if name in runs[0]
        },
        "repeats": runs,
    }


# fit_group: [(shot indices, draw), ...] of one k -> [(P_test, C) test scores, ...]
FitGroup = Callable[[list[tuple[np.ndarray, Draw]]], list[np.ndarray]]


def fewshot_curve(
    fit_group: FitGroup,
    task: Task,
    y_train: np.ndarray,
    y_test: np.ndarray,
    shots: tuple[int, ...],
    repeats: int,
    seed: int,
    describe: str = "",
    start: Callable[[list[list[tuple[np.ndarray, Draw]]]], None] | None = None,
) -> tuple[dict[str, dict], dict[int, np.ndarray]]:
    """Few-shot score per k, and what the task keeps of each draw's test predictions.

    For every k, the `repeats` draws (shots drawn by `task.draw_shots`) are handed to
    `fit_group` together (so a caller may train them as one batch); it trains one learner
    per draw on those training items and returns their test outputs. The draws depend only
    on (`seed`, k, repeat) and the training targets, so every learner scored on a session
    (scratch models, transfer) sees the same items. `start`, if given, first sees every
    k's draws at once (`npdecode.decode.pool.DrawPool` starts them all in its workers).

    Returns:
        {str(k): summary (see `summarise_draws`)}, and {k: (repeats, ...) kept predictions}.
    """
    task.check_shots(shots, y_train, describe or "few-shot")
    out: dict[str, dict] = {}
    predicted: dict[int, np.ndarray] = {}
    groups = []
    for k in shots:
        draws = [Draw(k, r, draw_seed(seed, k, r)) for r in range(repeats)]
        groups.append(
            [(task.draw_shots(y_train, k, np.random.default_rng(d.seed)), d) for d in draws]
        )
    if start is not None:
        start(groups)
    for i, (k, group) in enumerate(zip(shots, groups, strict=True), start=1):
        scores = fit_group(group)
        runs = []
        for (idx, draw), s in zip(group, scores, strict=True):
            m = task.metrics(s, y_test)
            runs.append({"repeat": draw.repeat, "seed": draw.seed, "n_train": len(idx), **m})
        out[str(k)] = summarise_draws(runs, task)
        predicted[k] = np.stack([task.kept_prediction(s) for s in scores])
        log.info(  # with progress: a curve can run for minutes
            "%s k=%d: %.3f ± %.3f (draws done %d / %d)",
            describe,
            k,
            out[str(k)]["mean"],
            out[str(k)]["sd"],
            i * repeats,
            len(shots) * repeats,
        )
    return out, predicted


def session_fewshot_curve(
    fit_group: FitGroup,
    data: SessionData,
    fs: FewshotParams,
    describe: str,
    start: Callable[[list[list[tuple[np.ndarray, Draw]]]], None] | None = None,
) -> tuple[dict[str, dict], dict[int, np.ndarray]]:
    """`fewshot_curve` on an Allen session's split with `fewshot`'s shots, repeats and seed:
    the same draws for every learner scored on it (ours, POYO, transfer)."""
    return fewshot_curve(
        fit_group,
        task_of(data),
        data.train.y,
        data.test.y,
        fs.shots,
        fs.repeats,
        fs.seed,
        describe=describe,
        start=start,
    )


# what a worker of `session_curve` trains draws of: model, session, train, fewshot, graph
DrawContext = tuple[str, SessionData, TrainParams, FewshotParams, GraphParams | None]


def fit_one_draw(context: DrawContext, idx: np.ndarray, draw: Draw) -> np.ndarray:
    """Test logits of one draw's learner (`session_curve`'s, one draw at a time): what a
    worker process of `npdecode.decode.pool.DrawPool` runs."""
    model, data, train, fs, graph = context
    view = shot_view(data, idx, fs.protocol, graph)
    (net,) = fit_on_shots(model, [view], train, fs, [draw.train_seed])
    return split_logits(net, view, "test", eval_batch(model, train))


def pooled(model: str, train: TrainParams, fs: FewshotParams, workers: int) -> bool:
    """Whether `session_curve` trains `model`'s draws in worker processes: deep models on a
    CPU with more than one worker and draws not batched."""
    return (
        workers > 1
        and model in DEEP
        and resolve_device(train.device).type == "cpu"
        and not (fs.protocol == "strict" and batch_draws(fs, train))
    )


def session_curve(
    model: str,
    data: SessionData,
    train: TrainParams,
    fs: FewshotParams,
    graph: GraphParams | None = None,
    workers: int = 1,
    threads: int = 1,
) -> tuple[dict, dict[int, np.ndarray], dict[int, list[int]]]:
    """The few-shot curve of single-session `model` on `data`: fit it on every draw (under
    `fs.protocol`; `graph`: ST-GAT's unit graph settings) and score it on the test split.
    Deep learners on a CPU train in `workers` processes of `threads` threads each (`pooled`;
    the same bytes as one process).

    Returns the result JSON, {k: (repeats, P_test) kept predictions} and {k: draw seeds}.
    """

    def fit_group(group: list[tuple[np.ndarray, Draw]]) -> list[np.ndarray]:
        views = [shot_view(data, idx, fs.protocol, graph) for idx, _ in group]
        nets = fit_on_shots(model, views, train, fs, [d.train_seed for _, d in group])
        batch = eval_batch(model, train)
        return [split_logits(net, v, "test", batch) for net, v in zip(nets, views, strict=True)]

    describe = f"{model} session {data.session_id}"
    if pooled(model, train, fs, workers):
        context: DrawContext = (model, data, train, fs, graph)
        with DrawPool(fit_one_draw, context, workers, threads) as pool:
            shots, predicted = session_fewshot_curve(pool, data, fs, describe, start=pool.start)
    else:
        shots, predicted = session_fewshot_curve(fit_group, data, fs, describe)
    fit_params = train.deep(model).fit if model in DEEP else None
    result = {
        "session_id": data.session_id,
        "specimen_id": data.specimen_id,
        "model": model,
        "protocol": fs.protocol,
        "protocol_detail": protocol_detail(model, fs, train, fit_params, data.n_classes),
        "seed": fs.seed,
        "n_test": len(data.test),
        "shots": shots,
    }
    seeds = {int(k): [r["seed"] for r in v["repeats"]] for k, v in shots.items()}
    return result, predicted, seeds
