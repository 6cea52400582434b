"""The macaque twin table: Wiener, Kalman and ideal R² of cursor velocity per session.

    nice python bench/macaque_table.py --sessions indy_20160622_01 loco_20170210_03 [--bin 0.04 --history 8]

For each session: its twin is generated and written as a real-layout `.mat` (timed: the
generation cost), read back with our reader (sorted units), binned, split into contiguous
blocks (8 train / val / test, still periods > 10 s excluded), and decoded by the Wiener
filter (ridge on `--history` bins, ridge chosen on val), the velocity Kalman filter (lag
chosen on val) and the ideal decoder (true tuning). R² of 2-D velocity on the test block,
overall (variance-weighted) with its 95 % block-bootstrap interval (5 s blocks), and the
paired difference Wiener - Kalman. Settings are the twin's fixed benchmark; nothing here
is tuned to the scores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from npdecode import evaluation
from npdecode.formats.macaque_truth import in_unit_order, read_macaque_truth
from npdecode.mat.read import read_mat
from npdecode.models import kalman, wiener
from npdecode.reaching import bins, ideal
from npdecode.reaching.prepare import prepare
from npdecode.sources.macaque_sessions import BY_NAME
from npdecode.sources.macaque_twin import write_twin


def one(name: str, folder: Path, width: float, h: int) -> dict:
    mat, tru = folder / f"{name}.mat", folder / f"{name}.truth.npz"
    c0, w0 = time.process_time(), time.perf_counter()
    write_twin(name, mat, tru)
    gen_cpu, gen_wall = time.process_time() - c0, time.perf_counter() - w0
    r = read_mat(mat, name)
    truth = read_macaque_truth(tru)
    p = prepare(r, width, h)
    tr, va, te = p.rows["train"], p.rows["val"], p.rows["test"]
    block = int(round(evaluation.BLOCK_S / width))
    y = p.vel

    win = bins.history(p.counts.astype(np.float32), h)  # (B, h, U)
    wf = wiener.fit(win[tr], y[tr], win[va], y[va])
    pred_w = wf.predict(win[te])

    states = kalman.state(p.pos, p.vel, p.acc)
    kf = kalman.fit(p.counts, states, tr, va)
    pred_k = kf.filter(p.counts)[te, kalman.VELOCITY]

    sub = in_unit_order(truth, r.unit_channel, r.unit_row)
    c0 = time.process_time()
    pred_i = ideal.decode(p.counts, sub, width, rows=te)[te, 2:4]
    ideal_cpu = time.process_time() - c0

    out = {"session": name, "monkey": BY_NAME[name].monkey, "channels": BY_NAME[name].channels,
           "units": len(r.spike_times), "gen_cpu_s": gen_cpu, "gen_wall_s": gen_wall,
           "test_bins": int(te.size), "still_s": p.report["still_seconds_excluded"],
           "ridge_alpha": wf.alpha, "kalman_lag": kf.lag, "ideal_cpu_s": ideal_cpu}  # fmt: skip
    for tag, pred in (("wiener", pred_w), ("kalman", pred_k), ("ideal", pred_i)):
        m = evaluation.regression_metrics(y[te], pred, block)
        out |= {f"{tag}": m["r2"], f"{tag}_lo": m["r2_lo"], f"{tag}_hi": m["r2_hi"]}
    pw = evaluation.paired_r2(y[te], pred_w, pred_k, block)
    out["wiener_minus_kalman"] = (pw["diff"], pw["lo"], pw["hi"])
    pi = evaluation.paired_r2(y[te], pred_i, pred_w, block)
    out["ideal_minus_wiener"] = (pi["diff"], pi["lo"], pi["hi"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", nargs="+", required=True)
    ap.add_argument("--bin", type=float, default=0.04)
    ap.add_argument("--history", type=int, default=8)
    a = ap.parse_args()
    print("| session | monkey | ch | units | Wiener R² [95 %] | Kalman R² [95 %] | ideal R² [95 %] "
          "| W-K paired | ideal-W paired | gen CPU s | ideal CPU s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name in a.sessions:
            o = one(name, Path(tmp), a.bin, a.history)
            cell = {
                k: f"{o[k]:.3f} [{o[k + '_lo']:.3f}, {o[k + '_hi']:.3f}]"
                for k in ("wiener", "kalman", "ideal")
            }
            d, e = o["wiener_minus_kalman"], o["ideal_minus_wiener"]
            print(f"| {name} | {o['monkey']} | {o['channels']} | {o['units']} | {cell['wiener']} | "
                  f"{cell['kalman']} | {cell['ideal']} | {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}] | "
                f"{e[0]:+.3f} [{e[1]:+.3f}, {e[2]:+.3f}] | "
                  f"{o['gen_cpu_s']:.2f} | {o['ideal_cpu_s']:.1f} |", flush=True)  # fmt: skip
            Path(tmp, f"{name}.mat").unlink()


if __name__ == "__main__":
    main()
