"""Per monkey across days (decode/crossday.py, decode/stability.py) on tiny macaque twins."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from npdecode.decode import crossday, stability
from npdecode.errors import ParamsError
from npdecode.formats.macaque_truth import read_macaque_truth
from npdecode.formats.reach_split import ReachData
from npdecode.formats.scores import read_scores
from npdecode.models.multisession import MultiSessionDecoder
from npdecode.params import Params, params_from_dict
from npdecode.paths import Layout
from npdecode.report.reach import plot_stability
from npdecode.sources.macaque_sessions import session
from npdecode.stages import crossday as stage
from npdecode.stages.report import write_reach
from tests.helpers import write_reach_days

DAYS = ("indy_20160622_01", "indy_20160624_03", "indy_20160627_01")


def small_params() -> Params:
    return params_from_dict(
        {
            "train": {"lstm": {"hidden": 16, "layers": 1}, "batch_size": 64},
            "multisession": {"latent": 8, "max_epochs": 3, "patience": 2},
            "reach": {"history": 4, "max_epochs": 3, "fewshot": {"steps": 6, "repeats": 1}},
        }
    )


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[ReachData], dict, Path]:
    """Three 60 s twins of one monkey, split as the split stage does, in a project root."""
    root = tmp_path_factory.mktemp("crossday")
    out, ids = [], {}
    for d, truth in write_reach_days(Layout(root), DAYS):
        out.append(d)
        ids[d.session_id] = crossday.unit_ids(d, read_macaque_truth(truth))
    return out, ids, root


@pytest.fixture(scope="module")
def donor(days: tuple) -> MultiSessionDecoder:
    """One decoder trained on the first two days (read-only: tests check it stays unchanged)."""
    return crossday.train(days[0][:2], small_params())[0]


def test_groups_and_held_out_days_partition_by_subject_and_date() -> None:
    names = [*DAYS, "loco_20170210_03", "loco_20170215_02", "indy_20160407_02"]
    groups = crossday.group_by_subject(names)
    assert sorted(groups) == ["indy", "loco"]
    assert sorted(n for g in groups.values() for n in g) == sorted(names)
    for monkey, g in groups.items():
        assert all(session(n).monkey == monkey for n in g)
        earlier, held = crossday.held_out_by_date(g)
        assert not set(earlier) & set(held) and held == [g[-1]]
        assert max(session(n).date for n in earlier) < session(held[0]).date
    assert crossday.held_out_by_date(groups["indy"])[1] == ["indy_20160627_01"]
    # two sessions on one day: both held out, neither trains the core
    same_day = ["indy_20160927_04", "indy_20160927_06", "indy_20160921_01"]
    earlier, held = crossday.held_out_by_date(same_day, 2)
    assert earlier == ["indy_20160921_01"] and held == ["indy_20160927_04", "indy_20160927_06"]
    with pytest.raises(ParamsError, match="mix"):
        crossday.held_out_by_date(names)
    with pytest.raises(ParamsError, match="earlier days"):
        crossday.held_out_by_date(["indy_20160927_04", "indy_20160927_06"])


def test_date_windows_cut_at_gaps_longer_than_the_window() -> None:
    names = ["indy_20160915_01", *DAYS, "indy_20160916_01"]
    assert crossday.date_windows(names, None) == [[*DAYS, "indy_20160915_01", "indy_20160916_01"]]
    assert crossday.date_windows(names, 30) == [
        list(DAYS),
        ["indy_20160915_01", "indy_20160916_01"],
    ]
    assert crossday.date_windows(names, 3) == [
        list(DAYS),
        ["indy_20160915_01", "indy_20160916_01"],
    ]
    assert crossday.date_windows(names, 2) == [list(DAYS[:2]), [DAYS[2]],
                                               ["indy_20160915_01", "indy_20160916_01"]]  # fmt: skip
    assert crossday.date_windows(names, 0) == [[n] for n in sorted(names)]
    with pytest.raises(ParamsError, match="window_days"):
        params_from_dict({"reach": {"crossday": {"window_days": -1}}})


def test_windows_match_the_split_and_missing_units_read_zero(days: tuple) -> None:
    sessions, ids, _ = days
    d = sessions[0]
    rows = d.rows["test"][:7]
    np.testing.assert_allclose(crossday.windows(d, rows, d.mean, d.sd), d.windows("test", rows),
                               atol=1e-5)  # fmt: skip
    cols = np.array([2, -1, 0])
    x = crossday.windows(d, rows, d.mean[[2, 0, 0]], d.sd[[2, 0, 0]], cols)
    assert np.all(x[:, :, 1] == 0)
    np.testing.assert_allclose(x[:, :, 2], d.windows("test", rows)[:, :, 0], atol=1e-5)
    np.testing.assert_allclose(x[:, :, 0], d.windows("test", rows)[:, :, 2], atol=1e-5)
    # persistent ids: neighbouring days share most neurons, and matching finds them
    a, b = ids[DAYS[0]], ids[DAYS[1]]
    cols = crossday.match_columns(a, b)
    assert 0.3 < np.mean(cols >= 0) < 1.0 or np.mean(cols >= 0) == 1.0
    assert all(b[j] == a[i] for i, j in enumerate(cols) if j >= 0)
    assert not set(a[cols < 0]) & set(b)


def test_transfer_trains_only_the_readin(days: tuple, donor: MultiSessionDecoder) -> None:
    sessions, _, _ = days
    params = small_params()
    core = {k: v.clone() for k, v in donor.core_state().items()}
    target = sessions[2]
    rows = crossday.shot_rows(target, 0.5, 0, 0)
    assert len(rows) == 750 and np.all(np.diff(rows) >= 1)
    assert set(rows) <= set(target.rows["train"])
    model, _, _ = crossday.fit_readin_on_shots(donor, target, rows, params, seed=3)
    for k, v in model.core_state().items():
        assert torch.equal(v, core[k]), k  # the core is bitwise the donor's
    for k, v in donor.core_state().items():
        assert torch.equal(v, core[k]), k  # and the donor is untouched
    fresh = crossday.readin_model(donor, target.session_id, target.n_units, 3)
    assert not torch.equal(fresh.readin(0).weight, model.readin(0).weight)  # the read-in trained


def test_matched_readin_starts_from_the_earlier_days_units(
    days: tuple, donor: MultiSessionDecoder
) -> None:
    sessions, ids, _ = days
    target = sessions[2]
    cols = crossday.match_columns(ids[target.session_id], ids[sessions[1].session_id])
    assert (cols >= 0).any() and (cols < 0).any()
    model = crossday.readin_model(donor, target.session_id, target.n_units, 0)
    crossday.matched_readin(model, donor, 1, cols)
    w, src = model.readin(0).weight, donor.readin(1).weight
    for j in np.flatnonzero(cols >= 0)[:5]:
        assert torch.equal(w[:, j], src[:, cols[j]])
    assert torch.all(w[:, torch.from_numpy(np.flatnonzero(cols < 0))] == 0)
    assert torch.equal(model.readin(0).bias, donor.readin(1).bias)


def test_transfer_readin_moves_from_its_matched_start_at_the_crossday_lr(
    days: tuple, donor: MultiSessionDecoder
) -> None:
    """The new read-in's steps follow `reach.crossday.adapt_lr` (not Allen's
    `multisession.adapt_lr`): at a vanishing lr it stays at the earlier day's read-in."""
    sessions, ids, _ = days
    params = small_params()
    target = sessions[2]
    rows = crossday.shot_rows(target, 0.5, 0, 0)
    init = (1, crossday.match_columns(ids[target.session_id], ids[sessions[1].session_id]))
    start = crossday.readin_model(donor, target.session_id, target.n_units, 3)
    crossday.matched_readin(start, donor, *init)

    def moved(lr: float) -> float:
        cd = dataclasses.replace(params.reach.crossday, adapt_lr=lr)
        p = dataclasses.replace(params, reach=dataclasses.replace(params.reach, crossday=cd))
        model, _, _ = crossday.fit_readin_on_shots(donor, target, rows, p, seed=3, init=init)
        return float((model.readin(0).weight - start.readin(0).weight).abs().max())

    assert moved(1e-9) < 1e-6  # Adam moves a weight by about lr per step: 6 steps
    assert moved(1e-2) > 1e-3


def test_shared_transfer_and_stability_arms(days: tuple, tmp_path: Path) -> None:
    sessions, ids, _ = days
    params = small_params()
    two = sessions[:2]
    per, singles = crossday.shared_vs_single(two, params)
    for d in two:
        r = per[d.session_id]
        for arm in ("shared", "single"):
            assert r[arm]["r2_lo"] <= r[arm]["r2_hi"] and np.isfinite(r[arm]["r2"])
        assert r["gain"]["lo"] <= r["gain"]["hi"] and 0 <= r["gain"]["p"] <= 1
        assert r["gain"]["diff"] == pytest.approx(r["shared"]["r2"] - r["single"]["r2"])
        # the fine-tuned arm (reach.crossday.finetune, on by default) beside the shared one
        assert np.isfinite(r["finetuned"]["r2"]) and r["finetune_epochs"] >= 1
        assert r["finetune_gain"]["diff"] == pytest.approx(r["finetuned"]["r2"] - r["single"]["r2"])
    t = stability.stability(two, singles, ids, params)
    assert len(t) == 1 and t["days_apart"].iloc[0] == 2
    assert 0 < t["units_kept"].iloc[0] <= 1
    for arm in ("fixed", "readin", "retrained"):
        assert np.isfinite(t[f"{arm}_r2"]).all()
    assert t["retrained_r2"].iloc[0] == pytest.approx(per[DAYS[1]]["single"]["r2"])
    # with every unit gone, the fixed arm predicts one constant: R² <= 0
    e = two[1]
    blind = crossday.predict(singles[DAYS[0]], 0, e, norm=(two[0].mean, two[0].sd),
                             target=(two[0].target_mean, two[0].target_sd),
                             cols=np.full(two[0].n_units, -1))  # fmt: skip
    assert np.ptp(blind, axis=0).max() < 1e-6
    assert crossday.score(e, blind)["r2"] <= 1e-9
    plot_stability(t, "indy", tmp_path / "stability_indy.png")
    assert (tmp_path / "stability_indy.png").stat().st_size > 1000
    tr = crossday.transfer_later_day(sessions, dataclasses.replace(params), (0.5,), None)
    assert tr["session"] == DAYS[2] and tr["core_sessions"] == list(DAYS[:2])
    assert len(tr["curve"]["0.5"]["draws"]) == 1
    assert len(tr["curve"]["0.5"]["scratch_draws"]) == 1
    assert np.isfinite(tr["curve"]["0.5"]["scratch_r2_mean"])


def test_stage_writes_per_session_metrics_results_plot_and_scores(days: tuple) -> None:
    _, _, root = days
    params = dataclasses.replace(small_params(), reach_sessions=DAYS)
    params = dataclasses.replace(
        params,
        reach=dataclasses.replace(
            params.reach, fewshot=dataclasses.replace(params.reach.fewshot, minutes=(0.25,))
        ),
    )
    stage.main(params, root)
    layout = Layout(root)
    for name in DAYS:
        assert (root / "metrics" / "reach" / "crossday" / f"{name}.json").exists()
    folder = root / "metrics" / "reach" / "crossday"
    table = pd.read_csv(folder / "sessions.csv")
    assert list(table["session"]) == list(DAYS)
    held = table[table["session"] == DAYS[-1]].iloc[0]
    assert np.isfinite(held["transfer_0.25min"]) and np.isfinite(held["ratio_0.25min"])
    assert np.isfinite(held["scratch_0.25min"])  # the same draws' decoder from scratch
    assert table[table["session"] != DAYS[-1]]["transfer_0.25min"].isna().all()
    assert (table["gain"] - (table["shared"] - table["single"])).abs().max() < 1e-9
    stab = pd.read_csv(folder / "stability.csv")
    assert len(stab) == 3 and list(stab.columns) == list(stage.stability_columns())
    write_reach(layout, params)  # the report stage's part: results and one plot per monkey
    assert pd.read_csv(layout.results_dir / "reach_crossday.csv").equals(table)
    assert len(pd.read_csv(layout.results_dir / "reach_stability.csv")) == 3
    assert (layout.plots_dir / "stability" / "indy.png").stat().st_size > 1000
    scores = read_scores(layout.scores("reach_crossday"))
    assert sorted(scores["r2"]["reach_shared"]) == sorted(DAYS)
    assert scores["r2"]["reach_single"][DAYS[0]] == pytest.approx(table["single"].iloc[0])


def test_finetune_starts_from_the_shared_decoder_and_never_loses_on_val(
    days: tuple, donor: MultiSessionDecoder
) -> None:
    sessions, _, _ = days
    params = small_params()
    shared = donor
    before = {k: v.clone() for k, v in shared.state_dict().items()}
    d = sessions[1]
    model, info = crossday.finetune(shared, 1, d, params)
    assert info["start_val_r2"] == pytest.approx(crossday.val_r2(shared, 1, d))
    assert crossday.val_r2(model, 0, d) >= info["start_val_r2"] - 1e-6
    assert crossday.val_r2(model, 0, d) == pytest.approx(
        max(info["start_val_r2"], info["best_val_r2"]), abs=1e-6
    )
    for k, v in shared.state_dict().items():
        assert torch.equal(v, before[k]), k  # the shared decoder is untouched
    if info["kept_shared"]:
        assert torch.equal(model.readin(0).weight, shared.readin(1).weight)
    else:
        assert not torch.equal(model.readin(0).weight, shared.readin(1).weight)
    # a tiny budget at a tiny lr cannot beat the start: the shared weights are kept
    tiny = dataclasses.replace(
        params,
        reach=dataclasses.replace(
            params.reach,
            crossday=dataclasses.replace(
                params.reach.crossday, finetune_lr=1e-9, finetune_epochs=1
            ),
        ),
    )
    kept, info = crossday.finetune(shared, 1, d, tiny)
    assert info["kept_shared"] or info["best_val_r2"] > info["start_val_r2"]
    assert crossday.val_r2(kept, 0, d) >= info["start_val_r2"] - 1e-6


def test_a_session_alone_in_its_date_window_has_shared_equal_to_single(days: tuple) -> None:
    sessions, _, _ = days
    params = small_params()
    cd = dataclasses.replace(params.reach.crossday, window_days=1.0)
    params = dataclasses.replace(params, reach=dataclasses.replace(params.reach, crossday=cd))
    per, _ = crossday.shared_vs_single(sessions[:2], params)  # 2 days apart: two groups
    for d in sessions[:2]:
        r = per[d.session_id]
        assert r["shared_group"] == [d.session_id] and "finetuned" not in r
        assert r["gain"]["diff"] == 0.0 and r["shared"]["r2"] == r["single"]["r2"]
