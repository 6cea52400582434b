"""CPU-seconds per few-shot draw: the old (transductive) curve vs the strict one, one by one
and with the draws of a k trained as one batch, and how the cost grows with the draws.

For each model and k, runs the few-shot stage's own code (`npdecode.decode.fewshot.session_curve`)
on a split session with `fewshot.shots: [k]` and `fewshot.repeats: R` for each R in
`--draws`, in three modes:
- before:   `fewshot.protocol: transductive` (the old behaviour: early stopping on the
            validation split, scored every epoch, within fewshot.max_epochs / patience);
- strict:   the strict protocol, each draw trained on its own (`batch_draws: off`);
- batched:  the strict protocol, the R draws trained as one batch (`batch_draws: on`).
Prints the median (over `--repeats` runs) CPU-seconds of the process per draw, and the
ratios: strict / before, batched / strict, and cost(R_max) / (R_max * cost(R_min)) (below
1: the cost grows sub-linearly in the draws). CPU-seconds count every torch thread; set
OMP_NUM_THREADS to the threads you mean to measure (1 on a shared machine: idle threads
spin and bill CPU time while they wait for a busy core).

    OMP_NUM_THREADS=1 python bench/bench_fewshot.py --root . --session 1 \\
        --models lstm transformer --shots 3 10 --draws 1 5 --repeats 3

`--root` is a project whose data/split/<session> exists (e.g. after `dvc repro split`).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

from npdecode.decode.fewshot import session_curve
from npdecode.formats.split import load_session
from npdecode.params import as_dict, load_params, params_from_dict
from npdecode.paths import Layout

MODES = {
    "before": {"protocol": "transductive"},
    "strict": {"protocol": "strict", "batch_draws": "off"},
    "batched": {"protocol": "strict", "batch_draws": "on"},
}


def cpu_seconds(model: str, data, raw: dict, k: int, draws: int, mode: str) -> tuple[float, float]:
    """(CPU-seconds, mean accuracy) of one few-shot curve with one k and `draws` draws."""
    fewshot = {**raw.get("fewshot", {}), "shots": [k], "repeats": draws, **MODES[mode]}
    params = params_from_dict({**raw, "fewshot": fewshot})
    start = time.process_time()
    graph = params.split.graph if model == "stgat" else None
    result, _, _ = session_curve(model, data, params.train, params.fewshot, graph)
    return time.process_time() - start, result["shots"][str(k)]["mean"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--session", type=int, default=1)
    parser.add_argument("--params", type=Path, default=None, help="params.yaml (default: defaults)")
    parser.add_argument("--models", nargs="+", default=["lstm", "transformer"])
    parser.add_argument("--shots", type=int, nargs="+", default=[3, 10])
    parser.add_argument("--draws", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    raw = as_dict(load_params(args.params)) if args.params else {}
    raw = {**raw, "sessions": [args.session]}
    data = load_session(Layout(args.root).split_dir(args.session), args.session)
    print(f"session {args.session}: {data.n_units} units, {len(data.test)} test presentations")
    for model in args.models:
        for k in args.shots:
            per_draw: dict[tuple[str, int], float] = {}
            for mode in args.modes:
                for r in args.draws:
                    if mode == "batched" and r == 1:
                        per_draw[mode, r] = per_draw.get(("strict", 1), float("nan"))
                        continue
                    runs = [cpu_seconds(model, data, raw, k, r, mode) for _ in range(args.repeats)]
                    cost = statistics.median(c for c, _ in runs) / r
                    per_draw[mode, r] = cost
                    print(
                        f"{model} k={k} {mode:8s} R={r:2d}: {cost:7.2f} CPU-s per draw "
                        f"(runs: {', '.join(f'{c / r:.2f}' for c, _ in runs)}), "
                        f"mean accuracy {runs[0][1]:.3f}",
                        flush=True,
                    )
            lo, hi = min(args.draws), max(args.draws)
            for mode in args.modes:
                if (mode, lo) in per_draw and (mode, hi) in per_draw and hi > lo:
                    print(
                        f"{model} k={k} {mode}: cost(R={hi}) / ({hi} x cost(R={lo})) per draw = "
                        f"{per_draw[mode, hi] / per_draw[mode, lo]:.2f}"
                    )
            for a, b in (("strict", "before"), ("batched", "strict")):
                if (a, hi) in per_draw and (b, hi) in per_draw:
                    print(
                        f"{model} k={k} R={hi}: {a} / {b} CPU-s per draw = "
                        f"{per_draw[a, hi] / per_draw[b, hi]:.2f}"
                    )


if __name__ == "__main__":
    main()
