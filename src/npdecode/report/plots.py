"""The report's figures, drawn with matplotlib (headless: the Agg backend)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.lines import Line2D

from npdecode.formats.files import atomic_path
from npdecode.nwb import read as nwb
from npdecode.params import SessionId, integer_id


def plot_accuracy(summary: pd.DataFrame, path: Path) -> None:
    """Grouped bars with 95 % intervals: test accuracy per session per model; chance, the
    plug-in Poisson decoder and the ideal observer marked per session."""
    sessions = sorted(summary["session_id"].unique())
    models = list(dict.fromkeys(summary["model"]))
    fig, ax = plt.subplots(
        figsize=(max(6.5, 1.3 * len(sessions) * max(1, len(models)) ** 0.5 + 3), 5.5)
    )
    width = 0.8 / max(1, len(models))
    for j, model in enumerate(models):
        part = summary[summary["model"] == model].set_index("session_id").reindex(sessions)
        ax.bar(
            np.arange(len(sessions)) + (j - (len(models) - 1) / 2) * width,
            part["accuracy"],
            width,
            yerr=_yerr(part, "accuracy"),
            capsize=2,
            error_kw={"elinewidth": 0.8},
            label=model,
        )
    per_session = summary.groupby("session_id").first().reindex(sessions)
    for i, s in enumerate(sessions):
        ax.hlines(
            per_session.loc[s, "chance"],
            i - 0.45,
            i + 0.45,
            colors="k",
            linestyles=":",
            linewidths=1.6,
            label="chance" if i == 0 else "_nolegend_",
        )
        plugin = per_session.loc[s].get("poisson_plugin_accuracy", np.nan)
        if np.isfinite(plugin):
            ax.hlines(
                plugin,
                i - 0.45,
                i + 0.45,
                colors="0.35",
                linestyles="-.",
                label="plug-in Poisson (summed counts)" if i == 0 else "_nolegend_",
            )
        if np.isfinite(per_session.loc[s, "ideal_accuracy"]):
            ax.hlines(
                per_session.loc[s, "ideal_accuracy"],
                i - 0.45,
                i + 0.45,
                colors="crimson",
                linestyles="--",
                label="ideal observer" if i == 0 else "_nolegend_",
            )
    ax.set_xticks(np.arange(len(sessions)), [str(s) for s in sessions])
    ax.set_xlabel("session")
    ax.set_ylabel("test accuracy (fraction)")
    ax.set_ylim(-0.02, 1)  # the chance line (~0.008) stays visible above the axis
    ax.set_title("Natural-scene decoding accuracy per session\n(error bars: 95 % interval)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    _save(fig, path)


def _yerr(rows: pd.DataFrame, column: str) -> np.ndarray | None:
    """(2, n) distances from `column` down to `<column>_lo` and up to `<column>_hi` (None when
    the table has no interval, e.g. metrics written before intervals existed)."""
    lo, hi = f"{column}_lo", f"{column}_hi"
    if lo not in rows or hi not in rows:
        return None
    value = rows[column].to_numpy(dtype=float)
    err = np.stack([value - rows[lo].to_numpy(dtype=float), rows[hi].to_numpy(dtype=float) - value])
    return np.nan_to_num(np.clip(err, 0, None))


def _save(fig: plt.Figure, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=150, format="png", bbox_inches="tight")  # nothing clipped
    plt.close(fig)


def plot_fewshot(table: pd.DataFrame, path: Path) -> None:
    """Test accuracy vs k (presentations per image), one panel per session, sd bands."""
    sessions = sorted(table["session_id"].unique())
    ncols = min(4, len(sessions))
    nrows = -(-len(sessions) // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(max(5.5, 4 * ncols), 3.6 * nrows + 0.6), squeeze=False, sharey=True
    )
    for ax, sid in zip(axes.ravel(), sessions, strict=False):
        part = table[table["session_id"] == sid]
        for model, rows in part.groupby("model", sort=False):
            rows = rows.sort_values("k")
            line = ax.errorbar(
                rows["k"],
                rows["accuracy_mean"],
                yerr=_yerr(rows, "accuracy_mean"),
                marker="o",
                capsize=3,
                label=model,
            )
            ax.fill_between(
                rows["k"],
                rows["accuracy_mean"] - rows["accuracy_sd"],
                rows["accuracy_mean"] + rows["accuracy_sd"],
                alpha=0.2,
                color=line[0].get_color(),
            )
        ax.axhline(part["chance"].iloc[0], color="k", linestyle=":", label="chance")
        ax.set_title(f"session {sid}")
        ax.set_xlabel("training presentations per image (k)")
        ax.set_xscale("log")
        ax.set_xticks(sorted(part["k"].unique()), [str(k) for k in sorted(part["k"].unique())])
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (fraction)")
    for ax in axes.ravel()[len(sessions) :]:
        ax.axis("off")
    axes.ravel()[0].legend(fontsize=8)
    axes.ravel()[0].set_ylim(0, 1)
    protocols = (
        ", ".join(sorted(table["protocol"].astype(str).unique())) if "protocol" in table else "?"
    )
    fig.suptitle(
        f"Few-shot decoding, {protocols} protocol\n"
        "mean over draws; band: ± sd\nbars: 95 % interval of the mean",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    _save(fig, path)


def plot_confusion(predictions: Path, session_id: SessionId, model: str, path: Path) -> None:
    """Row-normalised confusion matrix of one model's test predictions, on a log colour scale
    so that the scattered errors (a few presentations each) show beside the diagonal."""
    pred = pd.read_csv(predictions)
    frames = np.union1d(pred["actual"], pred["predicted"])
    pos = {f: i for i, f in enumerate(frames)}
    cm = np.zeros((len(frames), len(frames)))
    np.add.at(cm, (pred["actual"].map(pos).to_numpy(), pred["predicted"].map(pos).to_numpy()), 1)
    cm /= np.maximum(cm.sum(axis=1, keepdims=True), 1)
    floor = 1.0 / max(int(pred.groupby("actual").size().max()), 2)  # one presentation of a row
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(
        np.ma.masked_less(cm, floor / 2),  # cells never predicted stay blank
        cmap="viridis",
        norm=LogNorm(vmin=floor, vmax=1),
        interpolation="nearest",
    )
    ax.set_facecolor("white")
    fig.colorbar(im, ax=ax, label="fraction of the presented image's test presentations (log)")
    ax.set_xlabel("predicted image (frame; -1 = blank)")
    ax.set_ylabel("presented image (frame)")
    ticks = np.linspace(0, len(frames) - 1, min(len(frames), 8)).round().astype(int)
    ax.set_xticks(ticks, frames[ticks].astype(int))
    ax.set_yticks(ticks, frames[ticks].astype(int))
    acc = float((pred["actual"] == pred["predicted"]).mean())
    ax.set_title(
        f"session {session_id}: {model} (best model), test accuracy {acc:.3f}\n"
        f"{len(pred)} test presentations; blank cells: never predicted"
    )
    fig.tight_layout()
    _save(fig, path)


# Area colours: every area of a plot its own hue, far from every other's (one hue family
# per region made LGd/LP, CA1/DG and VISal/VISam look alike); the legend groups areas by
# region instead. Greys are kept for units outside any annotated structure.
DISTINCT = (
    "#1f77b4",  # blue
    "#ff7f0e",  # orange
    "#2ca02c",  # green
    "#d62728",  # red
    "#9467bd",  # purple
    "#8c564b",  # brown
    "#e377c2",  # pink
    "#17becf",  # cyan
    "#bcbd22",  # olive
    "#000080",  # navy
    "#f5c000",  # yellow
    "#00e060",  # bright green
    "#800000",  # maroon
    "#ff00ff",  # magenta
)
REGIONS = ("thalamus", "visual", "hippocampus", "other")  # the legend's order
UNANNOTATED = ("grey", "none", "nan", "")
THALAMUS = ("LGd", "LGv", "LP", "TH", "Eth", "PO", "POL", "SGN", "MGv", "MGd")
HIPPOCAMPUS = ("CA1", "CA2", "CA3", "DG", "SUB", "ProS", "HPF", "POST", "PRE")


def _region(area: str) -> str:
    if area in THALAMUS:
        return "thalamus"
    if area.startswith("VIS"):
        return "visual"
    if area in HIPPOCAMPUS:
        return "hippocampus"
    return "other"


def area_colours(areas: list[str]) -> dict[str, tuple | str]:
    """A distinct colour per area (in region order: thalamus, visual cortex, hippocampus,
    other), grey for units outside any annotated structure."""
    regions = list(REGIONS)
    named = [a for a in areas if a not in UNANNOTATED]
    named = sorted(named, key=lambda a: (regions.index(_region(a)), areas.index(a)))
    out: dict[str, tuple | str] = {a: DISTINCT[i % len(DISTINCT)] for i, a in enumerate(named)}
    return {**out, **{a: "#999999" for a in areas if a in UNANNOTATED}}


def plot_raster(
    path_nwb: Path, session_id: SessionId, stimulus: str, n_presentations: int, path: Path
) -> None:
    """Spikes of every unit around the first presentations: units grouped by probe (separated
    and labelled), surface to tip within a probe, coloured by area."""
    nwb_id = integer_id(session_id, "the raster plot (Allen-format NWB)")
    unit_ids, spikes = nwb.read_spike_times(path_nwb, nwb_id)
    units = nwb.read_units(path_nwb, nwb_id)
    pres = (
        nwb.read_presentations(path_nwb, nwb_id, stimulus)
        .sort_values("start_time")
        .head(n_presentations)
    )
    t0, t1 = pres["start_time"].iloc[0] - 0.1, pres["stop_time"].iloc[-1] + 0.1
    probes = units["probe"].astype(str).to_numpy()
    order = np.lexsort((-units["probe_vertical_position"].to_numpy(dtype=float), probes))
    areas = list(dict.fromkeys(units["area"].astype(str).iloc[order]))
    colour = area_colours(areas)
    fig, ax = plt.subplots(figsize=(11, 7))
    gap = max(2, len(order) // 60)  # rows left empty between probes
    row, rows, previous, starts = 0, np.empty(len(order), dtype=int), None, []
    for i, u in enumerate(order):
        if probes[u] != previous:
            if previous is not None:
                row += gap
            starts.append((row, probes[u]))
            previous = probes[u]
        rows[i] = row
        row += 1
    for i, u in enumerate(order):
        s = spikes[u]
        s = s[(s >= t0) & (s < t1)]
        ax.plot(
            s, np.full(len(s), rows[i]), "|", color=colour[str(units["area"].iloc[u])], markersize=2
        )
    for (start_row, probe), nxt in zip(
        starts, [*(r for r, _ in starts[1:]), row + gap], strict=True
    ):
        ax.axhspan(start_row - 0.5, nxt - gap - 0.5, color="0.5", alpha=0.06, linewidth=0)
        ax.text(
            t0 - 0.01 * (t1 - t0),
            (start_row + nxt - gap) / 2,
            probe,
            ha="right",
            va="center",
            fontsize=8,
        )
    for start, frame in zip(pres["start_time"], pres["frame"], strict=True):
        ax.axvline(start, color="k", linewidth=0.6, alpha=0.6)
        ax.text(start + 0.005, row + 1, "blank" if frame == -1 else f"{int(frame)}", fontsize=7)
    regions = list(REGIONS)
    handles = [
        plt.Line2D([], [], color=colour[a], marker="|", linestyle="", markersize=8, label=a)
        for a in sorted(areas, key=lambda a: (regions.index(_region(a)), a))
    ]
    ax.legend(
        handles=handles,
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        title="area (Allen CCF)",
        ncol=2 if len(areas) > 20 else 1,
    )
    ax.set_xlim(t0, t1)
    ax.set_ylim(-1, row + 4)
    ax.set_yticks([])
    ax.set_xlabel("time in session (s); lines: image onsets, labelled by frame")
    ax.set_ylabel("units, one band per probe (surface to tip)", labelpad=45)
    ax.set_title(
        f"session {session_id}: spikes around {len(pres)} {stimulus} presentations\n"
        "'grey': a unit on the probe outside any annotated structure (Allen's label)",
        fontsize=10,
    )
    fig.tight_layout()
    _save(fig, path)


def plot_multisession(table: pd.DataFrame, core: str, path: Path) -> None:
    """Left: single-session vs shared accuracy per session. Right: transfer to a held-out
    mouse vs the core model from scratch, vs k. Says so when nothing was shared or
    transferred, instead of drawing it as if it had been."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    x = np.arange(len(table))
    shared_with = table["shared_with"].astype(int)
    if (shared_with > 0).any():
        label = f"shared decoder ({int(shared_with.max()) + 1} sessions)"
        title = "One decoder per session vs one shared across sessions"
    else:
        label = "multisession model, trained on this session alone"
        title = "Nothing shared: one session per group"
    for dx, column, name in (
        (-0.2, "single_session", f"single session ({core})"),
        (0.2, "shared", label),
    ):
        left.bar(x + dx, table[column], 0.4, yerr=_yerr(table, column), capsize=2, label=name)
    left.set_xticks(x, [str(s) for s in table["session_id"]])
    left.set_xlabel("session")
    left.set_ylabel("test accuracy (fraction)")
    left.set_ylim(0, 1)
    left.legend(fontsize=8)
    left.set_title(f"{title} (bars: 95 % interval)", fontsize=10)
    handles = []
    ks = sorted({int(m.group(1)) for c in table if (m := re.search(r"_k(\d+)$", str(c)))})
    styles: tuple[tuple[str, Literal["--", "-"]], ...] = (("scratch", "--"), ("transfer", "-"))
    for name, style in styles:
        cols = [f"{name}_k{k}" for k in ks if f"{name}_k{k}" in table]
        if not cols:
            continue
        kk = [int(c.rsplit("_k", 1)[1]) for c in cols]
        for i, (_, row) in enumerate(table.iterrows()):
            mean = row[cols].to_numpy(dtype=float)
            err = None
            if all(f"{c}_lo" in row and f"{c}_hi" in row for c in cols):
                lo = row[[f"{c}_lo" for c in cols]].to_numpy(dtype=float)
                hi = row[[f"{c}_hi" for c in cols]].to_numpy(dtype=float)
                err = np.nan_to_num(np.clip(np.stack([mean - lo, hi - mean]), 0, None))
            right.errorbar(
                kk, mean, yerr=err, linestyle=style, marker="o", color=f"C{i % 10}", capsize=2
            )
        what = (
            "transfer (frozen core, new read-in)" if name == "transfer" else f"{core} from scratch"
        )
        handles.append(Line2D([], [], linestyle=style, marker="o", color="0.3", label=what))
    skipped = table["transfer_skipped"].fillna("").astype(str)
    transferred = not (skipped != "").all()
    if not transferred:  # above the curves (they rise to the right), never over a point
        right.text(
            0.02,
            0.98,
            "no transfer: " + "; ".join(sorted(set(skipped))),
            ha="left",
            va="top",
            wrap=True,
            fontsize=8,
            transform=right.transAxes,
        )
    if len(table) <= 10:
        handles += [
            Line2D([], [], color=f"C{i}", label=f"session {sid}")
            for i, sid in enumerate(table["session_id"])
        ]
    if ks:
        right.set_xscale("log")
        right.set_xticks(ks, [str(k) for k in ks])
        right.minorticks_off()
    held_out = ", held-out mouse" if transferred else ""
    right.set_xlabel(f"training presentations per image (k){held_out}")
    right.set_ylabel("test accuracy (fraction)")
    right.set_ylim(0, 1)
    right.set_title(
        "Few-shot on a held-out mouse (bars: 95 % interval of the mean)"
        if transferred
        else f"Few-shot, {core} from scratch (bars: 95 % interval of the mean)",
        fontsize=10,
    )
    if handles:
        right.legend(handles=handles, fontsize=8, loc="center left")  # the curves rise right
    fig.tight_layout()
    _save(fig, path)
