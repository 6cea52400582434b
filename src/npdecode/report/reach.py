"""The report's part for the macaque reaching sessions (params `reach_sessions`).

Tables: R² per session x decoder with 95 % intervals (`results/reach_summary.csv`), the
few-shot curves (`results/reach_fewshot.csv`) and the paired R² differences, appended to
`results/comparisons.csv` as kind `reach_r2`. Figures: decoded vs true velocity over a
test stretch, R² per session along the recording date (one line per monkey and decoder),
and the few-shot curves. Sessions or decoders not run yet are left out.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from npdecode.evaluation import BLOCK_S, paired_r2
from npdecode.formats.files import atomic_path, read_csv, read_json
from npdecode.params import REACH_MODELS
from npdecode.paths import Layout
from npdecode.sources.macaque_sessions import BY_NAME

DEEP = REACH_MODELS  # every deep decoder params reach.models may list
TRACE_S = 20.0  # seconds of the test split drawn in the traces figure


def _decoders(layout: Layout, name: str) -> dict[str, dict]:
    """{decoder: test metrics} of one session: the references, then each deep model."""
    out: dict[str, dict] = {}
    ref = layout.reach_metrics("reference", name)
    if ref.exists():
        out.update(read_json(ref)["test"])
    for model in DEEP:
        path = layout.reach_metrics(model, name)
        if path.exists():
            out[model] = read_json(path)["test"]
    return out


def summary_table(layout: Layout, names: tuple[str, ...]) -> pd.DataFrame:
    """One row per session x decoder: monkey, date, units, test R² (overall, per axis),
    Pearson r per axis, with 95 % intervals."""
    rows = []
    for name in names:
        s = BY_NAME[name]
        ref = layout.reach_metrics("reference", name)
        units = read_json(ref)["n_units"] if ref.exists() else None
        for decoder, m in _decoders(layout, name).items():
            rows.append({"session_id": name, "monkey": s.monkey, "date": s.date.isoformat(),
                         "units": units, "decoder": decoder,
                         **{k: m[k] for k in ("r2", "r2_lo", "r2_hi", "r2_0", "r2_0_lo",
                                              "r2_0_hi", "r2_1", "r2_1_lo", "r2_1_hi", "r_0",
                                              "r_1", "n")}})  # fmt: skip
    columns = ["session_id", "monkey", "date", "units", "decoder", "r2", "r2_lo", "r2_hi"]
    return pd.DataFrame(rows, columns=columns if not rows else None)


def comparison_rows(layout: Layout, names: tuple[str, ...]) -> list[dict]:
    """Paired R² differences (reference pairs, each deep model vs each reference) in the
    columns of `results/comparisons.csv`."""
    rows = []
    for name in names:
        pairs: list[dict] = []
        ref = layout.reach_metrics("reference", name)
        if ref.exists():
            pairs += read_json(ref)["paired"]
        for model in DEEP:
            path = layout.reach_metrics(model, name)
            if path.exists():
                pairs += read_json(path)["paired"]
        pairs += deep_pairs(layout, name)
        for p in pairs:
            rows.append({"session_id": name, "specimen_id": BY_NAME[name].monkey,
                         "kind": "reach_r2", "model_a": p["a"], "model_b": p["b"],
                         "n_test": p["n"], "n_draws": 1, "difference": p["diff"],
                         "difference_lo": p["lo"], "difference_hi": p["hi"],
                         "p_value": p["p"], "verdict": _verdict(p),
                         "method": "R² a - b, paired block bootstrap (5 s blocks)"})  # fmt: skip
    return rows


def deep_pairs(layout: Layout, name: str) -> list[dict]:
    """Every pair of deep models trained on session `name` (e.g. the LSTM and POYO), R²(a) -
    R²(b) on the same resampled test blocks (`evaluation.paired_r2`, blocks of `BLOCK_S`),
    from their test predictions."""
    tables = {}
    for model in DEEP:
        path = layout.reach_predictions(model, name)
        if path.exists():
            tables[model] = read_csv(path)
    out = []
    models = list(tables)
    for i, a in enumerate(models):
        for b in models[i + 1 :]:
            ta, tb = tables[a], tables[b]
            if not np.array_equal(ta["bin"].to_numpy(), tb["bin"].to_numpy()):
                continue  # not the same test bins (a stale file): no paired comparison
            width = float(np.median(np.diff(ta["time_s"].to_numpy()))) if len(ta) > 1 else 1.0
            block = max(1, int(round(BLOCK_S / width)))
            y = ta[["true_x", "true_y"]].to_numpy(np.float64)
            pa = ta[[f"{a}_x", f"{a}_y"]].to_numpy(np.float64)
            pb = tb[[f"{b}_x", f"{b}_y"]].to_numpy(np.float64)
            out.append({"a": a, "b": b, **paired_r2(y, pa, pb, block)})
    return out


def _verdict(p: dict) -> str:
    if p["lo"] > 0:
        return f"{p['a']} better"
    if p["hi"] < 0:
        return f"{p['b']} better"
    return "no difference at 95 %"


def fewshot_table(layout: Layout, names: tuple[str, ...]) -> pd.DataFrame:
    """Mean test R² over draws per session x model x k minutes, with its 95 % interval."""
    rows = []
    for name in names:
        for model in DEEP:
            path = layout.reach_fewshot(model, name)
            if not path.exists():
                continue
            for k, r in read_json(path)["minutes"].items():
                rows.append({"session_id": name, "model": model, "minutes": float(k),
                             "mean_r2": r["mean"], "sd": r["sd"], "mean_lo": r["mean_lo"],
                             "mean_hi": r["mean_hi"], "draws": len(r["repeats"])})  # fmt: skip
    return pd.DataFrame(rows)


def _save(fig: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150, format="png", bbox_inches="tight")
    plt.close(fig)


def plot_traces(layout: Layout, name: str, path: Path) -> None:
    """True vs decoded target (x and y) over the first `TRACE_S` s of the test split."""
    tables = [read_csv(layout.reach_predictions("reference", name))]
    for model in DEEP:
        p = layout.reach_predictions(model, name)
        if p.exists():
            tables.append(read_csv(p).drop(columns=["bin", "time_s", "true_x", "true_y"]))
    t = pd.concat(tables, axis=1)
    t = t[t["time_s"] < t["time_s"].iloc[0] + TRACE_S]
    decoders = [c[:-2] for c in t.columns if c.endswith("_x") and c != "true_x"]
    fig, axes = plt.subplots(2, 1, figsize=(10, 5.5), sharex=True)
    for ax, axis in zip(axes, ("x", "y"), strict=True):
        ax.plot(t["time_s"], t[f"true_{axis}"], color="black", lw=2, label="true")
        for d in decoders:
            ax.plot(t["time_s"], t[f"{d}_{axis}"], lw=1, label=d)
        ax.set_ylabel(f"{axis} velocity (mm/s)")
    axes[0].set_title(f"{name}: decoded vs true cursor velocity, test split")
    axes[0].legend(ncol=len(decoders) + 1, fontsize=8, loc="upper right")
    axes[1].set_xlabel("time in session (s)")
    _save(fig, path)


def plot_r2_by_date(summary: pd.DataFrame, path: Path) -> None:
    """Test R² (95 % interval) per session against its recording date: one line per monkey
    and decoder."""
    fig, ax = plt.subplots(figsize=(9, 4.5))
    decoders = list(dict.fromkeys(summary["decoder"]))
    colours = {d: f"C{i}" for i, d in enumerate(decoders)}
    lines = {"indy": ("-", "o"), "loco": ("--", "s")}
    for (monkey, decoder), part in summary.groupby(["monkey", "decoder"], sort=False):
        part = part.sort_values("date")
        # decoders side by side (a day apart) so their intervals do not hide each other
        dates = pd.to_datetime(part["date"]) + pd.Timedelta(days=decoders.index(decoder))
        # a percentile interval may leave the point estimate outside it: no negative bar
        err = np.maximum(np.vstack([part["r2"] - part["r2_lo"], part["r2_hi"] - part["r2"]]), 0)
        ls, marker = lines.get(str(monkey), (":", "^"))
        ax.errorbar(dates, part["r2"], yerr=err, color=colours[str(decoder)], ls=ls,
                    marker=marker, ms=4, capsize=2, label=f"{monkey}, {decoder}")  # fmt: skip
    days = pd.to_datetime(summary["date"])
    ax.set_xlim(days.min() - pd.Timedelta(days=15), days.max() + pd.Timedelta(days=15))
    ax.set_ylabel("test R² (velocity, 95 % interval)")
    ax.set_xlabel("recording date")
    ax.set_title("R² per session along the recording date")
    ax.legend(fontsize=7, ncol=2)
    fig.autofmt_xdate()
    _save(fig, path)


def plot_fewshot(table: pd.DataFrame, path: Path) -> None:
    """Mean test R² over draws vs k minutes of labelled data, 95 % interval of the mean."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for (name, model), part in table.groupby(["session_id", "model"], sort=False):
        part = part.sort_values("minutes")
        lo = part["mean_lo"].astype(float).fillna(part["mean_r2"])
        hi = part["mean_hi"].astype(float).fillna(part["mean_r2"])
        ax.errorbar(part["minutes"], part["mean_r2"],
                    yerr=np.maximum(np.vstack([part["mean_r2"] - lo, hi - part["mean_r2"]]), 0),
                    marker="o", capsize=3, label=f"{model}, {name}")  # fmt: skip
    ax.set_xlabel("labelled minutes (contiguous stretches of training blocks)")
    ax.set_ylabel("test R² (mean over draws, 95 % interval)")
    ax.set_title("Few-shot decoding of cursor velocity (strict protocol)")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_stability(table: pd.DataFrame, monkey: str, path: Path) -> None:
    """R² [95 %] of the three arms against days apart, for one monkey."""
    t = table[table["monkey"] == monkey].sort_values(["days_apart", "day"])
    fig, ax = plt.subplots(figsize=(6, 4))
    if t.empty:  # one session of this monkey in reach_sessions: nothing to compare yet
        ax.text(0.5, 0.5, f"{monkey}: one session in reach_sessions\nadd later days for a "
                "stability curve", ha="center", va="center", transform=ax.transAxes)  # fmt: skip
        ax.set_axis_off()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=120, metadata={"Software": None})
        plt.close(fig)
        return
    styles = {"fixed": ("tab:red", "no recalibration"), "readin": ("tab:blue", "read-in recalibrated"),
              "retrained": ("k", "retrained")}  # fmt: skip
    for arm, (color, label) in styles.items():
        x = t["days_apart"].to_numpy(float)
        y = t[f"{arm}_r2"].to_numpy()
        err = np.vstack([y - t[f"{arm}_lo"].to_numpy(), t[f"{arm}_hi"].to_numpy() - y])
        ax.errorbar(x, y, yerr=np.clip(err, 0, None), fmt="o", color=color, label=label,
                    alpha=0.8, capsize=2)  # fmt: skip
        means = t.groupby("days_apart")[f"{arm}_r2"].mean()
        ax.plot(means.index, means.to_numpy(), color=color, alpha=0.5)
    ax.set_xlabel("days between fitting and use")
    ax.set_ylabel("velocity R² on the later day's test blocks [95 %]")
    ax.set_title(f"{monkey}: a decoder fitted on day d, used on day d + Δ")
    ax.axhline(0, color="grey", lw=0.5)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)
