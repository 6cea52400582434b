"""Per monkey across days on the macaque twin: shared vs single, transfer to a later day,
stability over days (issue 23; `npdecode.decode.crossday`, `npdecode.decode.stability`).

    OMP_NUM_THREADS=1 nice python bench/macaque_crossday.py --out /tmp/crossday \
        --sessions indy_20160622_01 indy_20160624_03 indy_20160627_01 indy_20160915_01 \
        --twin-minutes 3 --minutes 0.5 1 --max-epochs 15

Every session's twin (`--twin-minutes` long) is written, read back (sorted units), binned
and split as the reach split stage does (params.yaml's `reach` section: bins, history,
blocks, still periods), cached under `--out`. Models: params.yaml's `multisession`
(latent, unit dropout, optimiser) on `train.<multisession.core>`'s architecture, epochs
capped at `reach.max_epochs`; transfer read-ins: `reach.fewshot.steps` (or `--steps`)
steps at `reach.crossday.adapt_lr`, `reach.fewshot.repeats` draws per k. Writes
`crossday.csv` (per session: single, shared, gain [95 %] with its paired p, the
fine-tuned shared decoder and its gain; transfer at each k, its ratio to the full
single-session R² and scratch on the same draws), `stability.csv`, one
`stability_<monkey>.png` per monkey and `crossday.json`, and prints the summary. `--set KEY=VALUE` overrides params (e.g.
`reach.crossday.window_days=null`); `--no-transfer`, `--no-stability` and
`--scratch-only` run a part.

`--poyo` runs ours and POYO (`npdecode.decode.poyo_crossday`, params.yaml's `train.poyo`)
on the same sessions and draws instead, paired on the same test rows (the reach_crossday
stage writes no predictions, so pairing lives here): per session the shared decoder of its
date window, ours vs POYO, and transfer to the monkey's latest day at each k and draw
(ours: a new read-in under the frozen core, from the latest earlier day's read-in; POYO:
new unit and session embeddings, the rest frozen), with the CPU seconds of each arm.
Writes `poyo.csv` and `poyo.json`:

    OMP_NUM_THREADS=1 nice python bench/macaque_crossday.py --poyo --out /tmp/crossday_poyo \
        --sessions loco_20170210_03 loco_20170213_02 loco_20170214_02 \
        --twin-minutes 2 --minutes 0.5 1 --max-epochs 8
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from npdecode.decode import crossday, poyo_crossday, stability
from npdecode.formats.macaque_truth import read_macaque_truth
from npdecode.formats.reach_split import ReachData, load_reach, write_reach_split
from npdecode.mat.read import read_mat
from npdecode.params import params_from_dict, with_overrides
from npdecode.reaching.session import split_arrays, unit_table
from npdecode.report.reach import plot_stability
from npdecode.sources.macaque_sessions import session
from npdecode.sources.macaque_twin import TwinSettings, write_twin


def prepare(name: str, out: Path, minutes: float, params) -> tuple[ReachData, np.ndarray]:  # type: ignore[no-untyped-def]
    """The session's split folder (cached) and its units' persistent ids."""
    reach = params.reach
    mat, tru, split = out / f"{name}.mat", out / f"{name}.truth.npz", out / "split" / name
    if not split.exists():
        write_twin(name, mat, tru, TwinSettings(duration_s=minutes * 60.0))
        arrays, rows, units, _ = split_arrays(read_mat(mat, name, reach.units), name, reach)
        s = session(name)
        meta = {"session_id": name, "dataset": "macaque", "monkey": s.monkey,
                "date": s.date.isoformat(), "bin_width_s": reach.bin_width_s,
                "history": reach.history, "target": reach.target, "units": reach.units}  # fmt: skip
        write_reach_split(split, arrays, rows, units, meta)
    d = load_reach(split, name)
    return d, crossday.unit_ids(d, read_macaque_truth(tru))


def spikes_of(d: ReachData, out: Path, units: str) -> list[np.ndarray]:
    """The spike trains of `d`'s units, in its column order, from the twin's `.mat`."""
    r = read_mat(out / f"{d.session_id}.mat", d.session_id, units)  # type: ignore[arg-type]
    where = {u: i for i, u in enumerate(unit_table(r)["unit_id"].tolist())}
    return [r.spike_times[where[u]] for u in d.units["unit_id"].tolist()]


def poyo_arm(a: argparse.Namespace, params, data: dict, ids: dict) -> None:  # type: ignore[no-untyped-def]
    """Ours and POYO on the same windows of days and the same transfer draws, paired."""
    spikes = {n: spikes_of(d, a.out, params.reach.units) for n, d in data.items()}
    fs, minutes = params.reach.fewshot, tuple(a.minutes)
    rows, report = [], {}
    for monkey, names in crossday.group_by_subject(a.sessions).items():
        sessions = [data[n] for n in names]
        t0 = time.process_time()
        ours: dict[str, np.ndarray] = {}
        for group in crossday.date_windows(names, params.reach.crossday.window_days):
            model, _ = crossday.train([data[n] for n in group], params)
            ours.update({n: crossday.predict(model, i, data[n]) for i, n in enumerate(group)})
        t1 = time.process_time()
        per, theirs = poyo_crossday.shared_by_window(sessions, spikes, params)
        t2 = time.process_time()
        for n in names:
            d = data[n]
            rows.append({"monkey": monkey, "session": n, "arm": "shared",
                         "ours": fmt(crossday.score(d, ours[n])), "poyo": fmt(per[n]["poyo_shared"]),
                         "poyo_minus_ours": fmt(crossday.paired(d, theirs[n], ours[n]), "diff"),
                         "p": round(crossday.paired(d, theirs[n], ours[n])["p"], 4)})  # fmt: skip
        cpu = {"ours_shared": t1 - t0, "poyo_shared": t2 - t1}
        pd.DataFrame(rows).to_csv(a.out / "poyo.csv", index=False)  # so far
        print(f"{monkey} shared: CPU s ours {t1 - t0:.0f}, POYO {t2 - t1:.0f}", flush=True)
        if len(names) > 1 and not a.no_transfer:
            earlier, held = crossday.held_out_by_date(names, 1)
            target = data[held[0]]
            t3 = time.process_time()
            donor, _ = crossday.train([data[n] for n in earlier], params)
            init = (len(earlier) - 1, crossday.match_columns(ids[held[0]], ids[earlier[-1]]))
            ours_tr = {}
            for k in minutes:
                for r in range(fs.repeats):
                    shots = crossday.shot_rows(target, k, fs.seed, r)
                    m, norm, ts = crossday.fit_readin_on_shots(donor, target, shots, params,
                                                               fs.seed * 1000 + r, init)  # fmt: skip
                    ours_tr[(k, r)] = crossday.predict(m, 0, target, norm=norm, target=ts)
            t4 = time.process_time()
            tr, pred = poyo_crossday.transfer_later_day(sessions, spikes, params, minutes)
            t5 = time.process_time()
            cpu.update(ours_transfer=t4 - t3, poyo_transfer=t5 - t4)
            for k in minutes:
                for r in range(fs.repeats):
                    a_, b_ = pred[f"{k:g}"][r], ours_tr[(k, r)]
                    g = crossday.paired(target, a_, b_)
                    rows.append({"monkey": monkey, "session": target.session_id,
                                 "arm": f"transfer {k:g} min draw {r}",
                                 "ours": fmt(crossday.score(target, b_)),
                                 "poyo": fmt(crossday.score(target, a_)),
                                 "poyo_minus_ours": fmt(g, "diff"), "p": round(g["p"], 4)})  # fmt: skip
            report[monkey] = {"poyo_transfer": tr}
        report.setdefault(monkey, {}).update(poyo_shared=per, cpu_s=cpu)
        print(f"== {monkey}: CPU s " + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items()))
        pd.DataFrame(rows).to_csv(a.out / "poyo.csv", index=False)  # so far
        (a.out / "poyo.json").write_text(json.dumps(report, indent=1, default=str))
    print(pd.DataFrame(rows).to_string(index=False))


def fmt(m: dict, key: str = "r2") -> str:
    lo, hi = ("lo", "hi") if key == "diff" else (f"{key}_lo", f"{key}_hi")
    return f"{m[key]:+.3f} [{m[lo]:+.3f}, {m[hi]:+.3f}]"


def bench_params(a: argparse.Namespace):  # type: ignore[no-untyped-def]
    """params.yaml (`--params`) with the `--set` overrides, `--steps` and `--max-epochs`."""
    raw = with_overrides(yaml.safe_load(a.params.read_text()), a.set)
    params = params_from_dict(raw, str(a.params))
    if a.steps is not None:
        fs = dataclasses.replace(params.reach.fewshot, steps=a.steps)
        params = dataclasses.replace(params, reach=dataclasses.replace(params.reach, fewshot=fs))
    if a.max_epochs is not None:
        params = dataclasses.replace(
            params, reach=dataclasses.replace(params.reach, max_epochs=a.max_epochs)
        )
    return params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sessions", nargs="+", required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--twin-minutes", type=float, default=4.0)
    ap.add_argument("--minutes", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    ap.add_argument("--steps", type=int, default=None, help="read-in budget (reach.fewshot.steps)")
    ap.add_argument(
        "--readin-init",
        choices=["matched", "random"],
        default="matched",
        help="transfer read-in: from the latest earlier day's on shared units, or random",
    )
    ap.add_argument("--max-epochs", type=int, default=None, help="cap (reach.max_epochs)")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="params overrides, e.g. reach.crossday.window_days=30 (YAML values)",
    )
    ap.add_argument("--no-transfer", action="store_true", help="shared vs single only ...")
    ap.add_argument("--no-stability", action="store_true", help="... and/or no stability")
    ap.add_argument(
        "--scratch-only",
        action="store_true",
        help="only the held-out day's decoder from scratch on the transfer's draws",
    )
    ap.add_argument("--poyo", action="store_true", help="ours vs POYO, paired (see above)")
    a = ap.parse_args()
    torch.set_num_threads(1)
    params = bench_params(a)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    a.out.mkdir(parents=True, exist_ok=True)
    data, ids = {}, {}
    for name in a.sessions:
        data[name], ids[name] = prepare(name, a.out, a.twin_minutes, params)
    if a.poyo:
        poyo_arm(a, params, data, ids)
        return
    if a.scratch_only:
        for monkey, names in crossday.group_by_subject(a.sessions).items():
            sc = crossday.scratch_later_day([data[n] for n in names], params, tuple(a.minutes))
            (a.out / f"scratch_{monkey}.json").write_text(json.dumps(sc, indent=1))
            print(monkey, {k: round(e["r2_mean"], 3) for k, e in sc["curve"].items()})
        return
    rows, report = [], {}
    for monkey, names in crossday.group_by_subject(a.sessions).items():
        t0 = time.process_time()
        sessions = [data[n] for n in names]
        per, singles = crossday.shared_vs_single(sessions, params)
        t1 = time.process_time()
        # what is known so far, before transfer and stability (a long run can be cut short)
        (a.out / f"partial_{monkey}.json").write_text(json.dumps(per, indent=1, default=str))
        tr: dict = {"session": None, "curve": {}}
        if not a.no_transfer:
            tr = crossday.transfer_later_day(
                sessions, params, tuple(a.minutes), per, ids if a.readin_init == "matched" else None
            )
        t2 = time.process_time()
        (a.out / f"partial_transfer_{monkey}.json").write_text(
            json.dumps(tr, indent=1, default=str)
        )
        stab = pd.DataFrame(columns=["day", "later", "days_apart", "units_kept", "fixed_r2",
                                     "readin_r2", "retrained_r2", "recovered"])  # fmt: skip
        if not a.no_stability:
            stab = stability.stability(sessions, singles, ids, params)
            stab.to_csv(a.out / f"stability_{monkey}.csv", index=False, float_format="%.4f")
            plot_stability(stab, monkey, a.out / f"stability_{monkey}.png")
        t3 = time.process_time()
        for n in names:
            r = per[n]
            row = {"session": n, "monkey": monkey, "date": r["date"], "units": r["n_units"],
                   "single": fmt(r["single"]), "shared": fmt(r["shared"]),
                   "gain": fmt(r["gain"], "diff"), "gain_p": round(r["gain"]["p"], 4)}  # fmt: skip
            if "finetuned" in r:
                row.update({"finetuned": fmt(r["finetuned"]),
                            "ft_gain": fmt(r["finetune_gain"], "diff"),
                            "ft_gain_p": round(r["finetune_gain"]["p"], 4),
                            "ft_epochs": r["finetune_epochs"]})  # fmt: skip
            if n == tr["session"]:
                for k, e in tr["curve"].items():
                    lo = min(x["r2_lo"] for x in e["draws"])
                    hi = max(x["r2_hi"] for x in e["draws"])
                    row[f"transfer_{k}min"] = (
                        f"{e['r2_mean']:+.3f} (draws' 95 % from {lo:+.3f} to {hi:+.3f})"
                    )
                    row[f"ratio_{k}min"] = round(e["ratio_to_single"], 3)
                    row[f"scratch_{k}min"] = round(e["scratch_r2_mean"], 3)
            rows.append(row)
        gains = [per[n]["gain"]["diff"] for n in names]
        ft = [per[n]["finetune_gain"]["diff"] for n in names if "finetune_gain" in per[n]]
        report[monkey] = {"per_session": per, "transfer": tr,
                          "stability": stab.to_dict("records"),
                          "median_gain": float(np.median(gains)),
                          "median_finetune_gain": float(np.median(ft)) if ft else None,
                          "cpu_s": {"shared_single": t1 - t0, "transfer": t2 - t1,
                                    "stability": t3 - t2}}  # fmt: skip
        print(f"\n== {monkey}: median gain shared - single {np.median(gains):+.3f} "
              f"(sessions with paired p < 0.05 and gain > 0: "
              f"{sum(per[n]['gain']['p'] < 0.05 and per[n]['gain']['diff'] > 0 for n in names)}"
              f"/{len(names)}); fine-tuned - single median "
              f"{np.median(ft) if ft else float('nan'):+.3f} (p < 0.05 and > 0: "
              f"{sum(per[n]['finetune_gain']['p'] < 0.05 and per[n]['finetune_gain']['diff'] > 0 for n in names if 'finetune_gain' in per[n])}"
              f"/{len(ft)}); CPU s {report[monkey]['cpu_s']}")  # fmt: skip
        print(stab[["day", "later", "days_apart", "units_kept", "fixed_r2", "readin_r2",
                    "retrained_r2", "recovered"]].to_string(index=False, float_format="%.3f"))  # fmt: skip
    table = pd.DataFrame(rows)
    table.to_csv(a.out / "crossday.csv", index=False)
    (a.out / "crossday.json").write_text(json.dumps(report, indent=1, default=str))
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
