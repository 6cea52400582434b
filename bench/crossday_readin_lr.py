"""Choose transfer's read-in learning rate (`reach.crossday.adapt_lr`) on dev days.

    OMP_NUM_THREADS=1 nice python bench/crossday_readin_lr.py --out /tmp/lr_indy \
        --sessions indy_20160622_01 indy_20160624_03 indy_20160627_01 \
        --lrs 0.003 0.001 0.0003 0.0001 --steps 300

The sessions' twins are written, split and cached as `bench/macaque_crossday.py` does
(`prepare`); the latest day is held out, a core is trained on the earlier days
(`crossday.train`, epochs capped at `--max-epochs`) and that day's own full-data decoder
of the same core gives the reference R². Then, per learning rate and draw of `--minutes`
of the held-out day's training windows (`crossday.shot_rows`, the transfer's draws), the
read-in starts from the latest earlier day's on the shared units and trains as transfer
does (`crossday.fit_readin_on_shots`, about `--steps` steps), scored on the held-out day's
test rows before training and after every epoch (a constant learning rate: a shorter
budget is a prefix of the run). Prints, per learning rate, the mean test R² of the draws
and its ratio to the full-data decoder by steps; writes `readin_lr.json` under `--out`.
Choose on days that are not reported (docs/crossday.md, "Transfer's learning rate (dev days)").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
import yaml
from macaque_crossday import prepare  # bench/ is on sys.path when this file runs as a script

from npdecode.decode import crossday
from npdecode.params import params_from_dict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", nargs="+", required=True, help="one monkey's days")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--twin-minutes", type=float, default=6.0)
    ap.add_argument("--minutes", type=float, default=1.0, help="k minutes of shots")
    ap.add_argument("--draws", type=int, default=5)
    ap.add_argument("--steps", type=int, default=300, help="read-in steps (scored every epoch)")
    ap.add_argument("--lrs", type=float, nargs="+", default=[0.003, 0.001, 0.0003, 0.0001])
    ap.add_argument("--max-epochs", type=int, default=15, help="cap (reach.max_epochs)")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    params = params_from_dict(yaml.safe_load(a.params.read_text()), str(a.params))
    fs = dataclasses.replace(params.reach.fewshot, steps=a.steps)
    params = dataclasses.replace(
        params, reach=dataclasses.replace(params.reach, max_epochs=a.max_epochs, fewshot=fs)
    )
    a.out.mkdir(parents=True, exist_ok=True)
    data, ids = {}, {}
    for name in a.sessions:
        data[name], ids[name] = prepare(name, a.out, a.twin_minutes, params)
    earlier, held = crossday.held_out_by_date(a.sessions, 1)
    target = data[held[0]]
    single, _ = crossday.train([target], params)
    single_r2 = crossday.score(target, crossday.predict(single, 0, target))["r2"]
    donor, _ = crossday.train([data[n] for n in earlier], params)
    init = (len(earlier) - 1, crossday.match_columns(ids[target.session_id], ids[earlier[-1]]))
    print(f"held out {target.session_id}; core on {earlier}; full-data single R² {single_r2:.3f}")
    report: dict = {"held_out": target.session_id, "core": earlier, "single_r2": single_r2,
                    "minutes": a.minutes, "lrs": {}}  # fmt: skip
    for lr in a.lrs:
        cd = dataclasses.replace(params.reach.crossday, adapt_lr=lr)
        p = dataclasses.replace(params, reach=dataclasses.replace(params.reach, crossday=cd))
        per_draw = []
        for r in range(a.draws):
            rows = crossday.shot_rows(target, a.minutes, fs.seed, r)
            norm, tstats = crossday.shot_stats(target, rows)
            steps_per_epoch = -(-len(rows) // params.train.batch_size)
            curve: dict[int, float] = {}

            def score(  # type: ignore[no-untyped-def]
                epoch: int,
                model: torch.nn.Module,
                curve=curve,
                n=steps_per_epoch,
                stats=(norm, tstats),
            ) -> None:
                pred = crossday.predict(model.model, 0, target, norm=stats[0], target=stats[1])  # type: ignore[arg-type]
                curve[epoch * n] = crossday.score(target, pred)["r2"]

            start = crossday.readin_model(donor, target.session_id, target.n_units, r)
            crossday.matched_readin(start, donor, *init)
            pred0 = crossday.predict(start.eval(), 0, target, norm=norm, target=tstats)
            curve[0] = crossday.score(target, pred0)["r2"]
            crossday.fit_readin_on_shots(donor, target, rows, p, r, init, on_epoch=score)
            per_draw.append(curve)
        steps = sorted(per_draw[0])
        mean = [float(np.mean([c[s] for c in per_draw])) for s in steps]
        report["lrs"][f"{lr:g}"] = {"steps": steps, "mean_r2": mean,
                                    "draws": [[c[s] for s in steps] for c in per_draw]}  # fmt: skip
        print(f"lr {lr:g}: " + ", ".join(f"{s}: {m:.3f} ({m / single_r2:.2f})"
                                         for s, m in zip(steps, mean, strict=True)), flush=True)  # fmt: skip
    (a.out / "readin_lr.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
