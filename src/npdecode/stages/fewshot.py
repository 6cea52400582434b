"""Stage `fewshot_<model>`: accuracy when training on only k presentations per image.

For each k in `fewshot.shots` and each of `fewshot.repeats` draws, k presentations per
image are sampled from the training split (seeded by `fewshot.seed`, k and the repeat),
the model is trained on them exactly as in its train stage (validation split for early
stopping), and scored on the full test split. Results are per session, never per mouse.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path
from typing import TypeVar

import numpy as np

from npdecode.cli import run_stage
from npdecode.data import SessionData, load_session
from npdecode.io import write_json
from npdecode.metrics import classification_metrics
from npdecode.params import FewshotParams, FitParams, Params
from npdecode.paths import Layout
from npdecode.runinfo import measure
from npdecode.stages.train import PARAMS as TRAIN_PARAMS
from npdecode.stages.train import TRAINERS, eval_batch, logits

# a model's few-shot run reads its training params as well
PARAMS = {model: ("fewshot", *keys) for model, keys in TRAIN_PARAMS.items()}
log = logging.getLogger(__name__)
FitT = TypeVar("FitT", bound=FitParams)


def sample_shots(y: np.ndarray, n_classes: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of k presentations per class (all of a class's, if it has fewer), sorted."""
    picks = []
    for c in range(n_classes):
        idx = np.flatnonzero(y == c)
        picks.append(rng.choice(idx, size=min(k, len(idx)), replace=False))
    return np.sort(np.concatenate(picks))


def draw_seed(base: int, k: int, repeat: int) -> int:
    """The seed of one few-shot draw: independent across k and repeats, fixed by `base`."""
    return int(np.random.SeedSequence([base, k, repeat]).generate_state(1)[0])


def draw_params(params: Params, model: str, seed: int) -> Params:
    """The params of one draw: its own seed, and the few-shot epoch budget for deep models."""
    sub = getattr(params.train, model)
    if isinstance(sub, FitParams):
        sub = fewshot_budget(sub, params.fewshot)
    return dataclasses.replace(
        params, train=dataclasses.replace(params.train, seed=seed, **{model: sub})
    )


def fewshot_budget(fit: FitT, fs: FewshotParams) -> FitT:
    """`fit` capped at the few-shot epoch budget: k*119 samples converge in fewer epochs."""
    return dataclasses.replace(
        fit, max_epochs=min(fit.max_epochs, fs.max_epochs), patience=min(fit.patience, fs.patience)
    )


def summarise_draws(runs: list[dict]) -> dict:
    """Mean and sd (over draws) of test accuracy, plus every draw, for one k."""
    acc = np.array([x["accuracy"] for x in runs])
    return {
        "mean": float(acc.mean()),
        "sd": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
        "top5_mean": float(np.mean([x["top5"] for x in runs])),
        "balanced_accuracy_mean": float(np.mean([x["balanced_accuracy"] for x in runs])),
        "repeats": runs,
    }


def run_fewshot(model: str, data: SessionData, params: Params) -> dict:
    """Train `model` on every draw and score it on the test split; return the results."""
    trainer = TRAINERS[model]
    out: dict = {
        "session_id": data.session_id,
        "specimen_id": data.specimen_id,
        "model": model,
        "seed": params.fewshot.seed,
        "n_test": len(data.test),
        "shots": {},
    }
    for k in params.fewshot.shots:
        runs = []
        for r in range(params.fewshot.repeats):
            seed = draw_seed(params.fewshot.seed, k, r)
            idx = sample_shots(data.train.y, data.n_classes, k, np.random.default_rng(seed))
            subset = dataclasses.replace(data, train=data.train.subset(idx))
            run_params = draw_params(params, model, seed % 2**31)
            net, _ = trainer(subset, run_params, None)  # no learning curves per draw
            scores = logits(net, data, "test", eval_batch(model, params))
            m = classification_metrics(scores, data.test.y, data.n_classes)
            runs.append({"repeat": r, "seed": seed, "n_train": len(idx), **m})
        out["shots"][str(k)] = summarise_draws(runs)
        log.info(
            "%s session %d, k=%d: %.3f ± %.3f",
            model,
            data.session_id,
            k,
            out["shots"][str(k)]["mean"],
            out["shots"][str(k)]["sd"],
        )
    return out


def main(params: Params, model: str, session_id: int, root: Path = Path(".")) -> None:
    """Few-shot curve of `model` on session `session_id`."""
    layout = Layout(root)
    data = load_session(layout.split_dir(session_id), session_id)
    with measure() as cost:
        result = run_fewshot(model, data, params)
    result.update(chance=1.0 / data.n_classes, **cost)
    write_json(layout.fewshot(model, session_id), result)


def _model_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", choices=sorted(TRAINERS))


if __name__ == "__main__":
    run_stage("fewshot", main, extra=_model_arg)
