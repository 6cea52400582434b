"""The neurometric report across sessions: which areas decode, how many units it takes,
how soon after onset; tables from `metrics/neurometric/<id>.json` and one figure per question.

Figures pool sessions per area: each session's own curve (thin, its points), and with two
sessions or more their mean with a 95 % t-interval across sessions (the figure a paper
shows); with one session, that session's bootstrap interval. Every accuracy is a fraction.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from scipy import stats

from npdecode.areas import area_order, is_visual
from npdecode.formats.files import read_json
from npdecode.params import SessionId
from npdecode.paths import Layout
from npdecode.report.plots import _save
from npdecode.report.plots import area_colours as plot_area_colours

ALL = "all"  # the group of all of a session's units (analyses/neurometric.py)
MATCHED_SHARE = 0.75  # areas are compared at a unit count this share of them reach
COLUMNS = [
    "session_id",
    "specimen_id",
    "model",
    "area",
    "area_units",
    "analysis",
    "n_units",
    "all_units",
    "start_s",
    "stop_s",
    "accuracy",
    "ci_low",
    "ci_high",
    "n_subsets",
    "chance",
]
AREA_COLUMNS = [
    "session_id",
    "specimen_id",
    "area",
    "n_units",
    "skipped",
    "selective_fraction",
    "median_rate_hz",
    "accuracy",
    "ci_low",
    "ci_high",
    "half_max_s",
]


def load_results(layout: Layout, sessions: tuple[SessionId, ...]) -> dict[SessionId, dict]:
    """The neurometric metrics of each session that has them."""
    paths = {sid: layout.neurometric(sid) for sid in sessions}
    return {sid: read_json(p) for sid, p in paths.items() if p.exists()}


def neurometric_table(results: dict[SessionId, dict]) -> pd.DataFrame:
    """One row per session × area × point: `units` (accuracy vs units, full window),
    `first_bins` (all the area's units, from onset to stop_s) and `window` (sliding)."""
    rows = []
    for sid, r in results.items():
        base = {"session_id": sid, "specimen_id": r.get("specimen_id"), "model": r["model"]}
        full_s = r["n_bins"] * r["bin_width_s"]
        for area, a in r["areas"].items():
            where = {**base, "area": area, "area_units": a["n_units"], "chance": r["chance"]}
            for u in a["units"]:
                rows.append(
                    {
                        **where,
                        "analysis": "units",
                        "n_units": u["n"],
                        "all_units": u["all"],
                        "start_s": 0.0,
                        "stop_s": full_s,
                        **_acc(u),
                        "n_subsets": len(u["subsets"]),
                    }
                )
            for kind in ("first", "window"):
                for t in a["time"].get(kind, []):
                    rows.append(
                        {
                            **where,
                            "analysis": "first_bins" if kind == "first" else "window",
                            "n_units": a["n_units"],
                            "all_units": True,
                            "start_s": t["start_s"],
                            "stop_s": t["stop_s"],
                            **_acc(t),
                            "n_subsets": 1,
                        }
                    )
    return pd.DataFrame(rows, columns=COLUMNS)


def _acc(point: dict) -> dict:
    return {k: point[k] for k in ("accuracy", "ci_low", "ci_high")}


def areas_table(results: dict[SessionId, dict]) -> pd.DataFrame:
    """One row per session × area: units, image-selective fraction, rate, accuracy with all
    the area's units and its half-max time; areas below the smallest n marked `skipped`."""
    rows = []
    for sid, r in results.items():
        diagnostics = r.get("diagnostics", {})
        facts = {ALL: diagnostics, **{f["area"]: f for f in diagnostics.get("areas", [])}}
        decoded, skipped = r["areas"], r["skipped"]["areas"]
        for area in area_order([*decoded, *skipped], first=[ALL]):
            f = facts.get(area, {})
            a = decoded.get(area)
            rows.append(
                {
                    "session_id": sid,
                    "specimen_id": r.get("specimen_id"),
                    "area": area,
                    "n_units": a["n_units"] if a else skipped[area],
                    "skipped": a is None,
                    "selective_fraction": f.get("selective_fraction", np.nan),
                    "median_rate_hz": f.get("median_rate_hz", np.nan),
                    "accuracy": a["accuracy"] if a else np.nan,
                    "ci_low": a["ci_low"] if a else np.nan,
                    "ci_high": a["ci_high"] if a else np.nan,
                    "half_max_s": np.nan if not a or a["half_max_s"] is None else a["half_max_s"],
                }
            )
    return pd.DataFrame(rows, columns=AREA_COLUMNS)


# --- pooling over sessions ----------------------------------------------------------------


def pool(points: pd.DataFrame, value: str = "accuracy") -> pd.Series:
    """Mean over sessions of `value` with a 95 % interval: a t-interval across sessions when
    there are several, the one session's own interval when there is one."""
    x = points[value].to_numpy(dtype=float)
    k = len(x)
    if k == 1:
        row = points.iloc[0]
        lo, hi = (row["ci_low"], row["ci_high"]) if value == "accuracy" else (np.nan, np.nan)
        return pd.Series({"mean": x[0], "low": lo, "high": hi, "k": 1})
    half = stats.t.ppf(0.975, k - 1) * x.std(ddof=1) / np.sqrt(k)
    lo, hi = x.mean() - half, x.mean() + half
    if value == "accuracy":  # a fraction: the interval stays in [0, 1]
        lo, hi = max(lo, 0.0), min(hi, 1.0)
    return pd.Series({"mean": x.mean(), "low": lo, "high": hi, "k": k})


def matched_units(table: pd.DataFrame, share: float = MATCHED_SHARE) -> int:
    """The number of units areas are compared at: the largest subset size that at least
    `share` of the (session, area) pairs (`all` aside) reach; smaller pairs sit it out."""
    rows = table[(table["analysis"] == "units") & (table["area"] != ALL)]
    sizes = rows.drop_duplicates(["session_id", "area"])["area_units"].to_numpy()
    listed = sorted(rows.loc[~rows["all_units"], "n_units"].unique())
    reached = [n for n in listed if (sizes >= n).mean() >= share]
    return int(reached[-1]) if reached else int(sizes.min())


def at_units(table: pd.DataFrame, n: int) -> pd.DataFrame:
    """Each (session, area)'s accuracy with n units: the subsets of n, or all when it has n."""
    part = table[(table["analysis"] == "units") & (table["n_units"] == n)]
    return part.sort_values("all_units").drop_duplicates(["session_id", "area"])


def pooled_curve(rows: pd.DataFrame, x: str, k_total: int) -> pd.DataFrame:
    """Mean over sessions at each x where at least 3 sessions (or all of them) have a point:
    a curve whose points rest on a handful of different sessions would zig-zag."""
    pooled = rows.groupby(x).apply(pool, include_groups=False)
    return pooled[(pooled["k"] >= min(3, k_total)) & (pooled["k"] > 1)]


# --- figures ------------------------------------------------------------------------------


def area_colours(areas: list[str]) -> dict[str, tuple | str]:
    """Black for all units, a distinct hue per area (tab20's pairs looked alike)."""
    others = [a for a in areas if a != ALL]
    return {ALL: (0.0, 0.0, 0.0, 1.0), **plot_area_colours(others)}


def _session_colours(sessions: list[SessionId]) -> dict[SessionId, tuple]:
    cmap = plt.get_cmap("tab10")
    return {s: cmap(i % 10) for i, s in enumerate(sessions)}


def _grid(n: int, ncols: int = 4, size: tuple[float, float] = (3.6, 3.0)) -> tuple:
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows + 0.8), squeeze=False
    )
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    return fig, axes


def _top(table: pd.DataFrame) -> float:
    return float(min(1.0, max(0.05, 1.1 * table["ci_high"].max())))


def _sessions_text(k: int) -> str:
    return f"{k} session{'s' * (k > 1)}"


def plot_units(table: pd.DataFrame, path: Path) -> None:
    """Accuracy vs number of units, one panel per area: each session's curve and all-units
    point, the mean over sessions with its interval."""
    part = table[table["analysis"] == "units"]
    areas = area_order(part["area"], first=[ALL])
    sessions = sorted(part["session_id"].unique())
    colour = _session_colours(sessions)
    fig, axes = _grid(len(areas))
    ticks = sorted(part.loc[~part["all_units"], "n_units"].unique())
    for ax, area in zip(axes.ravel(), areas, strict=False):
        rows = part[part["area"] == area]
        # each panel spans its own area's unit counts and accuracies: an area of 20 units
        # on the all-units axes would sit in a corner of an empty panel
        for sid in sessions:
            mine = rows[rows["session_id"] == sid].sort_values("n_units")
            if mine.empty:
                continue
            ax.plot(mine["n_units"], mine["accuracy"], "-", color=colour[sid], lw=0.8, alpha=0.7)
            sub = mine[~mine["all_units"]]
            ax.plot(sub["n_units"], sub["accuracy"], "o", color=colour[sid], ms=3)
            full = mine[mine["all_units"]]
            ax.plot(full["n_units"], full["accuracy"], "D", mfc="white", color=colour[sid], ms=5)
            if len(sessions) == 1:
                ax.fill_between(
                    mine["n_units"], mine["ci_low"], mine["ci_high"], color=colour[sid], alpha=0.2
                )
        k = rows["session_id"].nunique()
        if len(sessions) > 1:
            pooled = pooled_curve(rows[~rows["all_units"]], "n_units", k)
            ax.plot(pooled.index, pooled["mean"], "-", color="k", lw=2)
            ax.fill_between(pooled.index, pooled["low"], pooled["high"], color="k", alpha=0.15)
        ax.axhline(rows["chance"].iloc[0], color="k", ls=":", lw=1)
        size = int(rows.loc[rows["all_units"], "n_units"].median())
        units = f"{size} units" if k == 1 else f"median {size} units"
        name = "all units" if area == ALL else area
        ax.set_title(f"{name}  ({_sessions_text(k)}, {units})", fontsize=10)
        ax.set_xscale("log")
        lo, hi = float(rows["n_units"].min()), float(rows["n_units"].max())
        mine = [t for t in ticks if lo <= t and t * 1.3 < hi]  # labels must not touch
        ax.set_xticks([*mine, int(hi)], [*(str(t) for t in mine), str(int(hi))])
        ax.minorticks_off()
        ax.set_xlim(lo / 1.3, hi * 1.3)
        ax.set_ylim(0, _top(rows))
    for ax in axes.ravel():
        ax.set_xlabel("units decoded (n)", fontsize=8)
    for ax in axes[:, 0]:
        ax.set_ylabel("test accuracy (fraction)")
    handles = [
        Line2D([], [], color="0.3", marker="o", ms=3, lw=0.8, label="random subsets of n (mean)"),
        Line2D([], [], color="0.3", marker="D", mfc="white", ls="", label="all the area's units"),
        Line2D([], [], color="k", ls=":", label="chance"),
    ]
    if len(sessions) > 1:
        handles.append(
            Line2D([], [], color="k", lw=2, label="mean over sessions (n in >= 3), 95 % CI")
        )
        handles += [Line2D([], [], color=colour[s], label=f"session {s}") for s in sessions[:10]]
    else:
        handles.append(Line2D([], [], color=colour[sessions[0]], lw=6, alpha=0.3, label="95 % CI"))
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 5), fontsize=8)
    model = table["model"].iloc[0]
    fig.suptitle(
        f"Accuracy vs number of units per area ({model}, test split; each panel its own scale)"
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    _save(fig, path)


def _bars(ax: Axes, rows: pd.DataFrame, areas: list[str], value: str, offset: dict) -> None:
    """Per area: the pooled mean as a bar with its interval, each session as a dot."""
    colour = area_colours(areas)
    for i, area in enumerate(areas):
        mine = rows[(rows["area"] == area) & rows[value].notna()]
        if mine.empty:
            continue
        p = pool(mine, value)
        ax.bar(i, p["mean"], 0.7, color=colour[area], alpha=0.5)
        if np.isfinite(p["low"]):
            err = [[p["mean"] - p["low"]], [p["high"] - p["mean"]]]
            ax.errorbar(i, p["mean"], err, color="k", capsize=3)
        xs = i + mine["session_id"].map(offset).to_numpy()
        ax.plot(xs, mine[value], "o", color="k", ms=3)
    counts = rows.dropna(subset=[value]).groupby("area")["session_id"].nunique()
    labels = [f"{a} ({counts.get(a, 0)})" for a in areas]
    ax.set_xticks(range(len(areas)), labels, rotation=45, ha="right")


def _offsets(sessions: list[SessionId]) -> dict[SessionId, float]:
    jitter = np.linspace(-0.2, 0.2, len(sessions)) if len(sessions) > 1 else np.zeros(1)
    return dict(zip(sessions, jitter, strict=True))


def plot_areas(table: pd.DataFrame, path: Path) -> None:
    """Which areas decode: per area, accuracy at a matched number of units and with all its
    units; each session's point, the mean over sessions with its interval."""
    part = table[(table["analysis"] == "units") & (table["area"] != ALL)]
    areas = area_order(part["area"])
    n = matched_units(part)
    sessions = sorted(part["session_id"].unique())
    offset = _offsets(sessions)
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, 1.1 * len(areas) + 4), 4.4), sharey=True)
    panels = (
        (f"{n} units per area (random subsets)", at_units(part, n)),
        ("all of each area's units", part[part["all_units"]]),
    )
    for ax, (title, rows) in zip(axes, panels, strict=True):
        _bars(ax, rows, areas, "accuracy", offset)
        ax.axhline(part["chance"].iloc[0], color="k", ls=":", lw=1)
        ax.set_title(title)
    axes[0].set_ylim(0, _top(part[part["all_units"]]))
    axes[0].set_ylabel("test accuracy (fraction)")
    spread = "mean over sessions, 95 % CI" if len(sessions) > 1 else "95 % bootstrap CI"
    handles = [
        Line2D([], [], color="k", marker="o", ms=3, ls="", label="one session"),
        Line2D([], [], color="k", marker="_", ms=10, label=spread),
        Line2D([], [], color="k", ls=":", label="chance"),
    ]
    axes[1].legend(handles=handles, fontsize=8, loc="upper right")
    model = table["model"].iloc[0]
    fig.suptitle(
        f"Which areas carry the image ({model}, {_sessions_text(len(sessions))}; "
        "areas in hierarchy order, sessions per area in brackets)"
    )
    fig.tight_layout()
    _save(fig, path)


def normalised(rows: pd.DataFrame) -> pd.DataFrame:
    """`first_bins` rows with accuracy rescaled per session and area: 0 at chance, 1 at the
    full window."""
    rows = rows.copy()
    full = rows.sort_values("stop_s").groupby(["session_id", "area"])["accuracy"].transform("last")
    span = (full - rows["chance"]).where(lambda s: s > 0)
    rows["accuracy"] = (rows["accuracy"] - rows["chance"]) / span
    rows["ci_low"], rows["ci_high"] = np.nan, np.nan
    return rows


def _time_panel(
    ax: Axes, rows: pd.DataFrame, areas: list[str], colour: dict, x: str, bands: bool
) -> None:
    """Per area, the mean over sessions at each time (with the interval when `bands`)."""
    k = rows["session_id"].nunique()
    for area in areas:
        mine = rows[(rows["area"] == area) & rows["accuracy"].notna()]
        if mine.empty:
            continue
        p = pooled_curve(mine, x, k) if k > 1 else mine.groupby(x).apply(pool, include_groups=False)
        ax.plot(1000 * p.index, p["mean"], "o-", color=colour[area], ms=3, lw=1.5, label=area)
        if bands:
            ax.fill_between(1000 * p.index, p["low"], p["high"], color=colour[area], alpha=0.1)


def plot_time(table: pd.DataFrame, areas_summary: pd.DataFrame, path: Path) -> None:
    """How soon the image can be read out: accuracy from onset to t per area; the same
    rescaled from chance (0) to the full window (1) for the visual areas; each area's time
    to half of its full-window accuracy, per session; and the sliding window if run."""
    first = table[table["analysis"] == "first_bins"]
    window = table[table["analysis"] == "window"]
    areas = area_order(first["area"], first=[ALL])
    colour = area_colours(areas)
    k = first["session_id"].nunique()
    n_panels = 4 if len(window) else 3
    fig, axes = plt.subplots(1, n_panels, figsize=(5.0 * n_panels, 4.6))
    _time_panel(axes[0], first, areas, colour, "stop_s", bands=True)
    axes[0].axhline(first["chance"].iloc[0], color="k", ls=":", lw=1)
    axes[0].set_ylim(0, _top(first))
    axes[0].set_ylabel("test accuracy (fraction)")
    axes[0].set_title("decoded from onset to t (bands: 95 % CI)")
    # beside the panels, not over the early curves
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=8, title="area (chance dotted)")
    # rescaling divides by the full window's accuracy above chance: noise for areas that
    # barely decode, so these panels show the visual areas (and all units) whose
    # full-window interval lies above twice chance in every session
    full = first.sort_values("stop_s").groupby(["session_id", "area"]).last()
    clear = full["ci_low"] > 2 * full["chance"]
    decoding_areas = set(clear.groupby("area").all().loc[lambda c: c].index)
    decoding = areas_summary.dropna(subset=["half_max_s"])
    decoding = decoding[decoding["area"].isin(decoding_areas)]
    shown = [a for a in areas if a in set(decoding["area"]) and (a == ALL or is_visual(a))]
    _time_panel(
        axes[1], normalised(first[first["area"].isin(shown)]), shown, colour, "stop_s", False
    )
    axes[1].axhline(0.5, color="k", ls="--", lw=0.8)
    axes[1].set_ylim(-0.2, 1.2)
    axes[1].set_ylabel("accuracy above chance ÷ full window's")
    axes[1].set_title("visual areas, rescaled (0 = chance, 1 = full window)")
    for ax in axes[:2]:
        ax.set_xlabel("end of the decoded window after image onset (ms)")
    half = decoding[decoding["area"].isin(shown)].assign(
        half_max_ms=lambda d: 1000 * d["half_max_s"], ci_low=np.nan, ci_high=np.nan
    )
    _bars(axes[2], half, shown, "half_max_ms", _offsets(sorted(first["session_id"].unique())))
    axes[2].set_ylabel("time to half the full-window accuracy (ms)")
    spread_half = "bars: mean, 95 % CI over sessions" if k > 1 else "one session: no interval"
    axes[2].set_title(f"how soon each area decodes (dots: sessions;\n{spread_half})", fontsize=10)
    if len(window):
        mid = window.assign(mid_s=(window["start_s"] + window["stop_s"]) / 2)
        _time_panel(axes[3], mid, areas, colour, "mid_s", bands=True)
        axes[3].axhline(first["chance"].iloc[0], color="k", ls=":", lw=1)
        width = 1000 * float((window["stop_s"] - window["start_s"]).iloc[0])
        axes[3].set_title(f"decoded from a sliding {width:.0f} ms window")
        axes[3].set_xlabel("window centre after image onset (ms)")
        axes[3].set_ylabel("test accuracy (fraction)")
        axes[3].set_ylim(0, _top(window))
    model = table["model"].iloc[0]
    spread = ", means over sessions" if k > 1 else ""
    fig.suptitle(
        f"How soon the image can be read out ({model}, all of each area's units; "
        f"{_sessions_text(k)}{spread}); right panels: the areas whose full-window 95 % CI "
        "lies above 2 x chance"
    )
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    _save(fig, path)
