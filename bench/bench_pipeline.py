"""What each pipeline stage costs: CPU-seconds, wall time and peak RSS, measured from outside.

Run from the repository root:

    python bench/bench_pipeline.py                       # the default session (200 units)
    python bench/bench_pipeline.py --units 2000          # a real-size session
    python bench/bench_pipeline.py --units 2000 --project /tmp/p   # keeps the project
    python bench/bench_pipeline.py -S 'optional_models=[stgat]'   # ST-GAT too
    python bench/bench_pipeline.py --project /tmp/p --only optional -S 'optional_models=[stgat]'

It writes this repository's params.yaml (with `--units` and any `-S key=value` overrides)
into a temporary project and runs every stage of dvc.yaml in its order, each as the
command dvc.yaml gives it (`python -m npdecode.stages.<stage> ...`) in a fresh process
with this repository's src/ first on PYTHONPATH and `--threads` torch/OpenMP threads.
No DVC: each stage is measured alone, through `os.wait4` of its process (user + system
CPU-s, peak RSS), never from the metrics files the stages write. Prints one row per stage
and the totals; `--json` also writes them. `--project` reuses (and keeps) a project
folder, so a second run can time a few stages without regenerating the session. The machine's
load average is printed before and after: CPU-s are only comparable on a quiet machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from npdecode.params import with_overrides

REPO = Path(__file__).resolve().parents[1]
IMPORT_ONLY = "import npdecode.stages.train, npdecode.stages.fewshot"


def stage_commands(
    dvc_yaml: dict,
    sessions: list[int],
    optional_models: list[str],
    reach_sessions: list[str] | None = None,
    reach_models: list[str] | None = None,
    optional_shared: list[str] | None = None,
) -> list[tuple[str, list[str]]]:
    """(stage name as DVC names it, argv) for every stage of dvc.yaml, in file order, with
    `foreach` (over sessions, or reaching sessions) and `matrix` (optional models x
    sessions, reaching models x reaching sessions) expanded."""
    lists: dict[str, list] = {
        "${sessions}": sessions,
        "${optional_models}": optional_models,
        "${reach_sessions}": reach_sessions or [],
        "${reach.models}": reach_models or [],
        "${optional_shared}": optional_shared or [],
    }
    out = []
    for name, stage in dvc_yaml["stages"].items():
        if "foreach" in stage:
            runs = [(f"{name}@{s}", {"${item}": s}) for s in lists[stage["foreach"]]]
        elif "matrix" in stage:
            keys = list(stage["matrix"])
            combos = itertools.product(*(lists[stage["matrix"][k]] for k in keys))
            runs = [
                (
                    f"{name}@{'-'.join(map(str, c))}",
                    {f"${{item.{k}}}": v for k, v in zip(keys, c, strict=True)},
                )
                for c in combos
            ]
        else:
            runs = [(name, {})]
        cmd = stage.get("do", stage)["cmd"]
        for run_name, subs in runs:
            text = cmd
            for key, value in subs.items():
                text = text.replace(key, str(value))
            argv = shlex.split(text)
            if argv[:2] == ["env", "PYTHONPATH=src"]:  # PYTHONPATH is set for every child here
                argv = argv[2:]
            if argv[0] == "python":
                argv[0] = sys.executable
            out.append((run_name, argv))
    return out


def run_measured(argv: list[str], cwd: Path, env: dict[str, str]) -> dict[str, float]:
    """Run one process to the end; its wall s, user + system CPU-s and peak RSS (MiB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    err = proc.stderr.read()  # drained while it runs (a full pipe would block the child)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{shlex.join(argv)} failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    return {
        "wall_s": round(wall, 2),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
    }


def project_params(repo: Path, units: int | None, overrides: list[str]) -> dict:
    """`repo`'s params.yaml with `--units` and `-S key=value` applied."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    sets = ([f"fetch.synthetic.n_units={units}"] if units else []) + overrides
    return with_overrides(params, sets)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", type=int, help="fetch.synthetic.n_units (default: params.yaml's)")
    ap.add_argument("-S", "--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every stage")
    ap.add_argument("--only", help="regex: run only the stages whose name matches")
    ap.add_argument("--project", type=Path, help="run in this folder (created or reused, kept)")
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument(
        "--repo", type=Path, default=REPO, help="checkout whose dvc.yaml, params.yaml, src/ run"
    )
    args = ap.parse_args()
    repo = args.repo.resolve()

    params = project_params(repo, args.units, args.sets)
    sessions = [int(s) for s in params["sessions"]]
    optional = [str(m) for m in params.get("optional_models", [])]
    reach = [str(s) for s in params.get("reach_sessions", [])]
    reach_models = [str(m) for m in params.get("reach", {}).get("models", [])]
    dvc_yaml = yaml.safe_load((repo / "dvc.yaml").read_text())
    shared = [str(m) for m in params.get("optional_shared", [])]
    commands = stage_commands(dvc_yaml, sessions, optional, reach, reach_models, shared)
    if args.only:
        commands = [(n, a) for n, a in commands if re.search(args.only, n)]
    env = {
        **os.environ,
        "PYTHONPATH": str(repo / "src"),
        "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads),
        "DVC_NO_ANALYTICS": "1",
        "TQDM_DISABLE": "1",
    }
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        root = (args.project or Path(tmp)).resolve()
        root.mkdir(parents=True, exist_ok=True)
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        n_units = params["fetch"]["synthetic"]["n_units"]
        print(
            f"{len(commands)} stages, sessions {sessions}, {n_units} synthetic units, "
            f"{args.threads} thread(s), code {repo}, in {root}; load average {_load()}",
            flush=True,
        )
        rows = [
            {
                "stage": "(python + imports only)",
                **run_measured([sys.executable, "-c", IMPORT_ONLY], root, env),
            }
        ]
        print(f"{'stage':32} {'wall s':>8} {'CPU-s':>8} {'peak RSS MiB':>13}")
        _print(rows[0])
        for name, argv in commands:
            rows.append({"stage": name, **run_measured(argv, root, env)})
            _print(rows[-1])
        stages = rows[1:]
        total = {
            "stage": "total (stages)",
            "wall_s": round(sum(r["wall_s"] for r in stages), 1),
            "cpu_s": round(sum(r["cpu_s"] for r in stages), 1),
            "peak_rss_mb": max((r["peak_rss_mb"] for r in stages), default=0.0),
        }
        _print(total)
        for r in stages:
            r["share_of_cpu"] = round(r["cpu_s"] / total["cpu_s"], 3) if total["cpu_s"] else 0.0
        print(f"load average after: {_load()}")
        print(
            "largest CPU shares: "
            + ", ".join(
                f"{r['stage']} {r['share_of_cpu']:.0%}"
                for r in sorted(stages, key=lambda r: -r["cpu_s"])[:5]
            )
        )
        if args.json:
            info = {"units": n_units, "threads": args.threads, "sets": args.sets}
            args.json.write_text(json.dumps({**info, "rows": rows + [total]}, indent=2))
    return 0


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def _print(row: dict) -> None:
    print(
        f"{row['stage']:32} {row['wall_s']:8.1f} {row['cpu_s']:8.1f} {row['peak_rss_mb']:13.0f}",
        flush=True,
    )


if __name__ == "__main__":
    raise SystemExit(main())
