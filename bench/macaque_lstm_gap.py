"""Why the LSTM falls short of the twin's ideal decoder: LSTM variants on the same split.

    OMP_NUM_THREADS=1 nice python bench/macaque_lstm_gap.py --sessions indy_20160915_01 \
        --variants base reach.history=16 train.lstm.input_dropout=0.1

Per session (a 10-minute twin; never retuned), the twin is written and split once per
history length; the ideal decoder and the Wiener filter are scored once per split, then
each variant (`name` = a comma-separated list of `dotted.key=value` changes to params.yaml,
`base` = none) trains the LSTM through `npdecode.reaching.decoders.fit_deep` with the
committed training settings and prints: test R² [95 % block-bootstrap interval], its
paired difference to the ideal decoder on the same test blocks, epochs run / best
epoch, and training CPU seconds. Choose on dev sessions, then report on others.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from macaque_table import committed_params  # noqa: E402

from npdecode.formats.macaque_truth import read_macaque_truth  # noqa: E402
from npdecode.formats.reach_split import load_reach, write_reach_split  # noqa: E402
from npdecode.mat.read import read_mat  # noqa: E402
from npdecode.reaching import decoders  # noqa: E402
from npdecode.reaching.session import split_arrays  # noqa: E402
from npdecode.sources.macaque_twin import TwinSettings, write_twin  # noqa: E402
from npdecode.threads import configure_threads  # noqa: E402

SPLIT_KEYS = ("reach.history", "reach.bin_width_s")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", nargs="+", required=True)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--variants", nargs="+", default=["base"])
    a = ap.parse_args()
    configure_threads(1)
    print("| session | variant | lstm R² [95 %] | lstm − ideal (paired) | ideal R² | wiener R² "
          "| epochs / best | train CPU s |", flush=True)  # fmt: skip
    print("|---" * 8 + "|")
    for name in a.sessions:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            mat, truth_path = root / f"{name}.mat", root / f"{name}.truth.npz"
            write_twin(name, mat, truth_path, TwinSettings(duration_s=a.minutes * 60.0))
            r = read_mat(mat, name)
            truth = read_macaque_truth(truth_path)
            refs: dict[tuple[str, ...], tuple] = {}
            for variant in a.variants:
                sets = [] if variant == "base" else variant.split(",")
                params = committed_params(sets)
                key = tuple(s for s in sets if s.split("=")[0] in SPLIT_KEYS)
                if key not in refs:
                    d = root / f"split{len(refs)}"
                    arrays, rows, units, _ = split_arrays(r, name, params.reach)
                    meta = {"session_id": name, "dataset": "macaque",
                            "bin_width_s": params.reach.bin_width_s,
                            "history": params.reach.history, "target": params.reach.target,
                            "units": params.reach.units}  # fmt: skip
                    write_reach_split(d, arrays, rows, units, meta)
                    data = load_reach(d, name)
                    preds, _ = decoders.references(data, truth)
                    refs[key] = (data, preds)
                data, preds = refs[key]
                c = time.process_time()
                net, info = decoders.fit_deep("lstm", data, params.train, params.reach.max_epochs)
                cpu = time.process_time() - c
                p = decoders.predict(net, data, "test")
                task, y = decoders.task_of(data), data.y("test").astype(float)
                m = task.metrics(p, y)
                gap = task.paired(p, preds["ideal"], y)
                ideal = task.metrics(preds["ideal"], y)["r2"]
                wiener = task.metrics(preds["wiener"], y)["r2"]
                print(f"| {name} | {variant} | {m['r2']:.3f} [{m['r2_lo']:.3f}, {m['r2_hi']:.3f}] "
                      f"| {gap['diff']:+.3f} [{gap['lo']:+.3f}, {gap['hi']:+.3f}] | {ideal:.3f} "
                      f"| {wiener:.3f} | {info.get('epochs')} / {info.get('best_epoch')} "
                      f"| {cpu:.0f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
