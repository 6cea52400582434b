"""Response statistics by area of one session: the realism table of the Allen twin.

Runs on any Allen-format NWB, real or synthetic (npdecode.nwb.read only), so a twin's
figures can be set beside its real session's:

    python -m npdecode.analyses.realism --nwb data/raw/session_29/session_29.nwb --session-id 29

Per area (the eight visual areas of Siegle et al. 2021, hippocampus, the rest): units,
median firing rate (the units table's `firing_rate`), share of image-selective units
(one-way ANOVA of the presentation counts over the 119 classes, p < 0.01), their median
lifetime sparseness over the 118 images (Vinje & Gallant 2000, as AllenSDK's
`lifetime_sparseness_ns`), median response latency (first 5 ms bin where the mean response
to the images exceeds the blank's by half its peak), median Fano factor of the
presentation counts (per image, over its repeats, images with >= 1 spike on average), and
the mean noise correlation between selective units of the area. Then the same for units
that pass AllenSDK's default filters and units that fail them. Presentations overlapping
invalid_times are left out, as the pipeline's clean stage leaves them out.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from npdecode.analyses.protocols import default_qc, presentation_counts
from npdecode.binning import bin_spikes, presentations_overlapping
from npdecode.errors import NpdecodeError
from npdecode.nwb import read as nwb
from npdecode.sources.allen_vc import HIPPOCAMPUS, VISUAL_AREAS

STEP_S = 0.005  # PSTH bins for the latency
log = logging.getLogger("npdecode.analyses.realism")


def family(area: str) -> str:
    """The row of the table an area belongs to."""
    if area in VISUAL_AREAS:
        return area
    return "hippocampus" if area in HIPPOCAMPUS else "other"


def selectivity(counts: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(U,) p-value of a one-way ANOVA of each unit's counts (P, U) over `classes` (P,)."""
    k = int(classes.max()) + 1
    n = np.bincount(classes, minlength=k).astype(np.float64)  # (C,)
    sums = np.zeros((k, counts.shape[1]))
    np.add.at(sums, classes, counts)
    means = sums / n[:, None]
    grand = counts.mean(axis=0)
    between = (n[:, None] * (means - grand) ** 2).sum(axis=0) / (k - 1)
    within = ((counts - means[classes]) ** 2).sum(axis=0) / (len(counts) - k)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(within > 0, between / within, 0.0)
    return stats.f.sf(f, k - 1, len(counts) - k)


def lifetime_sparseness(responses: np.ndarray) -> np.ndarray:
    """(U,) Vinje-Gallant sparseness of (images, U) mean responses: 0 dense, 1 one image."""
    n = len(responses)
    mean, square = responses.mean(axis=0), (responses**2).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (1 - mean**2 / square) / (1 - 1 / n)


def latency(psth: np.ndarray, blank: np.ndarray) -> np.ndarray:
    """(U,) s: first PSTH bin of (bins, U) rates where rate - blank >= half the peak excess."""
    excess = psth - blank[None, :]
    peak = excess.max(axis=0)
    above = excess >= 0.5 * peak[None, :]
    out = (above.argmax(axis=0) + 0.5) * STEP_S
    return np.where(peak > 0, out, np.nan)


def fano(counts: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(U,) median over classes (mean count >= 1) of the variance / mean of the counts."""
    values = np.full((int(classes.max()) + 1, counts.shape[1]), np.nan)
    for c in np.unique(classes):
        x = counts[classes == c]
        m = x.mean(axis=0)
        values[c] = np.where(m >= 1, x.var(axis=0, ddof=1) / np.maximum(m, 1e-12), np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # units never at >= 1 spike: NaN
        return np.nanmedian(values, axis=0)


def noise_correlation(counts: np.ndarray, classes: np.ndarray, max_units: int = 150) -> float:
    """Mean pairwise correlation of (P, U) counts after removing each class's mean."""
    if counts.shape[1] < 2:
        return float("nan")
    counts = counts[:, :max_units].astype(np.float64)
    k = int(classes.max()) + 1
    sums = np.zeros((k, counts.shape[1]))
    np.add.at(sums, classes, counts)
    residual = counts - (sums / np.bincount(classes, minlength=k)[:, None])[classes]
    keep = residual.std(axis=0) > 0
    r = np.corrcoef(residual[:, keep], rowvar=False)
    return float(r[np.triu_indices_from(r, 1)].mean()) if keep.sum() > 1 else float("nan")


def unit_statistics(path: str | Path, session_id: int) -> tuple[pd.DataFrame, dict]:
    """One row per unit (area, QC, rate, selectivity, sparseness, latency, Fano) and the
    counts needed for correlations."""
    units = nwb.read_units(path, session_id)
    ids, spikes = nwb.read_spike_times(path, session_id)
    pres = nwb.read_presentations(path, session_id, "natural_scenes").sort_values("start_time")
    invalid = nwb.read_invalid_times(path, session_id)
    bad = presentations_overlapping(
        pres["start_time"].to_numpy(),
        pres["stop_time"].to_numpy(),
        invalid[["start_time", "stop_time"]].to_numpy(np.float64).reshape(-1, 2),
    )
    pres = pres[~bad]  # as the pipeline's clean stage: noise there is no response
    starts, stops = pres["start_time"].to_numpy(), pres["stop_time"].to_numpy()
    frames = pres["frame"].to_numpy()
    classes = np.searchsorted(np.unique(frames), frames)  # class 0 = blank (frame -1)
    counts = presentation_counts(spikes, starts, stops)  # (P, U)
    psth = np.zeros((round(0.25 / STEP_S), len(spikes)))
    blank = np.zeros(len(spikes))
    image = frames >= 0
    for chunk in np.array_split(np.arange(len(spikes)), max(1, len(spikes) // 200)):
        binned = bin_spikes([spikes[u] for u in chunk], starts, starts + 0.25, len(psth))
        psth[:, chunk] = binned[image].mean(axis=0) / STEP_S  # (bins, u) Hz
        blank[chunk] = binned[~image].mean(axis=(0, 1)) / STEP_S
    k = int(classes.max()) + 1
    means = np.zeros((k, counts.shape[1]))
    np.add.at(means, classes, counts)
    means /= np.bincount(classes, minlength=k)[:, None]
    table = pd.DataFrame(
        {
            "unit_id": ids,
            "family": units["area"].astype(str).map(family).to_numpy(),
            "passes_qc": default_qc(units),
            "firing_rate": units["firing_rate"].to_numpy(),
            "p_selective": selectivity(counts, classes),
            "sparseness": lifetime_sparseness(means[1:]),
            "latency_ms": latency(psth, blank) * 1e3,
            "fano": fano(counts, classes),
        }
    )
    return table, {"counts": counts, "classes": classes}


def summary(table: pd.DataFrame, extra: dict, by: str) -> pd.DataFrame:
    """The realism table: one row per value of column `by` (family or passes_qc)."""
    rows = []
    for key, group in table.groupby(by, sort=False):
        sel = group[group["p_selective"] < 0.01]
        idx = sel.index.to_numpy()
        rows.append(
            {
                by: key,
                "units": len(group),
                "rate_hz": group["firing_rate"].median(),
                "selective": len(sel) / len(group),
                "sparseness": sel["sparseness"].median(),
                "latency_ms": sel["latency_ms"].median(),
                "fano": sel["fano"].median(),
                "noise_corr": noise_correlation(extra["counts"][:, idx], extra["classes"]),
            }
        )
    out = pd.DataFrame(rows)
    if by == "family":
        order = [*VISUAL_AREAS, "hippocampus", "other"]
        out = out.set_index(by).reindex([o for o in order if o in set(out[by])]).reset_index()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m npdecode.analyses.realism",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--nwb", type=Path, required=True)
    parser.add_argument("--session-id", type=int, required=True)
    parser.add_argument("--json", type=Path, help="also write both tables here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s realism: %(message)s")
    try:
        table, extra = unit_statistics(args.nwb, args.session_id)
    except NpdecodeError as err:
        print(f"npdecode realism: error: {err}", file=sys.stderr)
        return 2
    by_area = summary(table, extra, "family")
    by_qc = summary(table, extra, "passes_qc")
    print(nwb.read_description(args.nwb, args.session_id))
    print(by_area.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(by_qc.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.json:
        args.json.write_text(
            json.dumps(
                {"by_area": by_area.to_dict("records"), "by_qc": by_qc.to_dict("records")},
                indent=2,
                default=float,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
