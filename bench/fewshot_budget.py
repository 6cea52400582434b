"""Choose the strict few-shot budget (`fewshot.steps`) on development sessions.

The strict protocol has no validation data, so a deep k-shot learner trains a fixed budget.
That budget is chosen here, once, on sessions that are NOT the ones reported (by default
synthetic sessions 2 and 3; the pipeline's default session is 1): for each model, k and
draw, a strict learner (statistics from its shots, no validation) trains up to `--epochs`
epochs, and its accuracy on the development session's test split is recorded after every
`--every` epochs. With a constant learning rate a run to E epochs is a prefix of the run to
`--epochs`, so one run per draw gives every budget. Prints, per k, the mean accuracy by
epoch and the best budget in epochs and in optimiser steps (epochs x ceil(k*C / batch)),
and the epoch budget that maximises the mean over k and sessions.

    python bench/fewshot_budget.py --root /tmp/dev --sessions 2 3 --models lstm transformer
    python bench/fewshot_budget.py --root /tmp/dev --sessions 3 --shots 1 3 --epochs 300 --every 10

The development sessions must have been split already (fetch, bin, clean, split stages,
e.g. `dvc repro split` in a project whose params list those sessions).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch

from npdecode.decode.fewshot import Draw, draw_seed, normalised, sample_shots, shot_view
from npdecode.decode.session import build_for_session
from npdecode.decode.training import fit_fixed, fit_options, predict_logits
from npdecode.formats.split import load_session
from npdecode.params import load_params, params_from_dict
from npdecode.paths import Layout


def curves(
    root: Path, sid: int, model: str, ks: list[int], repeats: int, epochs: int, params, every=1
):
    """{k: (repeats, epochs) test accuracy after each epoch} for one dev session."""
    data = load_session(Layout(root).split_dir(sid), sid)
    graph = params.split.graph if model == "stgat" else None
    fit_params = dataclasses.replace(getattr(params.train, model).fit, max_epochs=epochs)
    out = {}
    for k in ks:
        acc = np.zeros((repeats, epochs))
        for r in range(repeats):
            draw = Draw(k, r, draw_seed(params.fewshot.seed, k, r))
            idx = sample_shots(data.train.y, data.n_classes, k, np.random.default_rng(draw.seed))
            view = shot_view(data, idx, "strict", graph)
            train = dataclasses.replace(params.train, seed=draw.train_seed)
            net = build_for_session(model, view, train)
            x_test, y_test = normalised(view, "test")
            y_t = torch.as_tensor(y_test)

            def score(epoch: int, m: torch.nn.Module, row=acc[r], x=x_test, y=y_t) -> None:
                if epoch % every and epoch != epochs:
                    row[epoch - 1] = np.nan  # not scored (--every)
                    return
                logits = predict_logits(m, x, params.train.batch_size)
                row[epoch - 1] = (logits.argmax(1).cpu() == y).float().mean().item()

            opts = dataclasses.replace(fit_options(train, fit_params), seed=draw.train_seed)
            fit_fixed(net, normalised(view, "train"), opts, on_epoch=score)
        out[k] = acc
        mean = acc.mean(0)
        best = int(np.nanargmax(mean)) + 1
        marks = sorted({10, 20, 30, 40, 60, 80, 100, 150, 200, 300} & set(range(1, epochs + 1)))
        steps = -(-k * data.n_classes // params.train.batch_size)  # per epoch
        print(
            f"session {sid} {model} k={k}: best mean acc {np.nanmax(mean):.3f} at {best} epochs "
            f"({best * steps} steps); "
            + ", ".join(f"{e}: {mean[e - 1]:.3f}" for e in marks if np.isfinite(mean[e - 1])),
            flush=True,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, required=True, help="project holding the splits")
    parser.add_argument("--sessions", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--models", nargs="+", default=["lstm", "transformer"])
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 3, 5, 10])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--every", type=int, default=1, help="score every this many epochs")
    parser.add_argument("--params", type=Path, default=None, help="params.yaml (default: defaults)")
    parser.add_argument("--out", type=Path, default=None, help="write the curves as JSON here")
    args = parser.parse_args()
    params = load_params(args.params) if args.params else params_from_dict({})
    record = {}
    for model in args.models:
        per = [
            curves(args.root, s, model, args.shots, args.repeats, args.epochs, params, args.every)
            for s in args.sessions
        ]
        # mean over sessions, draws and k: every k counts equally in the choice
        table = np.mean([[c[k].mean(0) for k in args.shots] for c in per], axis=0)  # (K, E)
        overall = table.mean(0)
        best = int(np.nanargmax(overall)) + 1
        print(
            f"{model}: mean over k and sessions is highest at {best} epochs ({np.nanmax(overall):.3f})"
        )
        for e in (10, 20, 30, 40, 50, 60, 80, 100, 150, 200, 300):
            if e <= args.epochs and np.isfinite(overall[e - 1]):
                per_k = " ".join(f"k={k}:{table[i, e - 1]:.3f}" for i, k in enumerate(args.shots))
                print(f"  {e:3d} epochs: mean {overall[e - 1]:.3f}  ({per_k})")
        record[model] = {
            "sessions": args.sessions,
            "best_epochs": best,
            "mean_by_k_epoch": {str(k): table[i].tolist() for i, k in enumerate(args.shots)},
        }
    if args.out:
        args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
