"""POYO per monkey across days (decode/poyo_crossday.py, stage reach_crossday_poyo) on tiny
macaque twins: the same groups, held-out day and draws as ours (decode/crossday.py)."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

pytest.importorskip("torch_brain")

from npdecode.decode import crossday, poyo_crossday, poyo_reach  # noqa: E402
from npdecode.formats.files import read_json  # noqa: E402
from npdecode.formats.reach_split import ReachData  # noqa: E402
from npdecode.formats.scores import read_scores  # noqa: E402
from npdecode.params import Params, params_from_dict  # noqa: E402
from npdecode.paths import Layout  # noqa: E402
from npdecode.stages import crossday_poyo as stage  # noqa: E402
from npdecode.stages.crossday import stability_columns  # noqa: E402
from npdecode.stages.report import write_reach  # noqa: E402
from tests.helpers import write_reach_days  # noqa: E402

PROJECT = Path(__file__).resolve().parents[1]
DAYS = ("indy_20160622_01", "indy_20160624_03", "indy_20160627_01")
TINY_POYO = {"dim": 16, "depth": 1, "dim_head": 8, "cross_heads": 1, "self_heads": 2,
             "latents_per_step": 4, "max_epochs": 1, "patience": 1}  # fmt: skip


def small_params() -> Params:
    return params_from_dict(
        {
            "reach_sessions": list(DAYS),
            "train": {"poyo": TINY_POYO, "batch_size": 128},
            "reach": {"history": 4, "max_epochs": 1,
                      "fewshot": {"minutes": [0.25], "steps": 2, "repeats": 1}},
        }
    )  # fmt: skip


@pytest.fixture(scope="module")
def days(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[ReachData], dict, Path]:
    """Three 60 s twins of one monkey, split as the split stage does, in a project root,
    and their spike trains (tests/test_crossday.py's `days`)."""
    root = tmp_path_factory.mktemp("crossday_poyo")
    layout = Layout(root)
    out, spikes = [], {}
    for d, _ in write_reach_days(layout, DAYS):
        out.append(d)
        spikes[d.session_id] = poyo_reach.read_spikes(layout, d, "sorted")
    return out, spikes, root


@pytest.fixture(scope="module")
def transfer(days: tuple, monkeypatch_module: Any) -> tuple[dict, dict, list]:
    """POYO's transfer on the twins, given in reverse order, each adaptation's shots kept."""
    sessions, spikes, _ = days
    seen: list[Any] = []
    real = poyo_crossday.adapt_poyo

    def spy(donor: Any, shots: Any, fit: Any, full_epochs: int = 0) -> Any:
        seen.append((shots, fit))
        return real(donor, shots, fit, full_epochs)

    monkeypatch_module.setattr(poyo_crossday, "adapt_poyo", spy)
    result, predicted = poyo_crossday.transfer_later_day(
        sessions[::-1], spikes, small_params(), (0.25,)
    )
    return result, predicted, seen


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def test_held_out_day_is_the_latest_by_date(transfer: tuple, days: tuple) -> None:
    result, predicted, _ = transfer
    assert result["session"] == DAYS[-1] and result["core_sessions"] == list(DAYS[:2])
    draws = result["curve"]["0.25"]["draws"]
    assert len(draws) == 1 and draws[0]["r2_lo"] <= draws[0]["r2_hi"]
    target = days[0][-1]
    assert predicted["0.25"][0].shape == (len(target.rows["test"]), 2)
    assert draws[0]["r2"] == pytest.approx(crossday.score(target, predicted["0.25"][0])["r2"])


def test_transfer_adapts_on_exactly_our_draws_rows(transfer: tuple, days: tuple) -> None:
    _, _, seen = transfer
    target = days[0][-1]
    rows = crossday.shot_rows(target, 0.25, 0, 0)  # reach.fewshot.seed 0, repeat 0
    (shots, fit), = seen  # fmt: skip
    assert shots.session == target.session_id
    np.testing.assert_array_equal(shots.stops, target.time[rows] + target.width_s)
    np.testing.assert_array_equal(shots.starts, target.time[rows - target.history + 1])
    # the targets are z-scored with the shots' own statistics (strict protocol)
    y = shots.y[:, -1]
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-4)
    assert fit.lr == small_params().reach.crossday.adapt_lr


def test_first_phase_changes_only_the_new_sessions_embeddings(days: tuple) -> None:
    sessions, spikes, _ = days
    params = small_params()
    donor, _ = poyo_crossday.train_shared(sessions[:2], spikes, params)
    before = {k: v.clone() for k, v in donor.tensors().items()}
    target = sessions[2]
    rows = crossday.shot_rows(target, 0.25, 0, 0)
    model, pred = poyo_crossday.adapt_on_shots(donor, target, spikes[target.session_id], rows,
                                            params, seed=5)  # fmt: skip
    ids = {id(p) for p in model.embedding_parameters()}
    emb = {n for n, p in model.named_parameters() if id(p) in ids}
    assert emb and len(emb) < len(dict(model.named_parameters()))
    after = dict(model.named_parameters())
    for name, value in after.items():
        if name not in emb:
            assert torch.equal(value, before[name]), name  # bitwise the donor's
    for k, v in donor.tensors().items():
        assert torch.equal(v, before[k]), k  # the donor is untouched
    start = copy.deepcopy(donor)
    torch.manual_seed(5)
    start.set_units({target.session_id: tuple(target.units["unit_id"].astype(str))})
    fresh = dict(start.named_parameters())
    assert any(not torch.equal(after[n], fresh[n]) for n in emb)  # the embeddings trained
    # same inputs, same seed: the same predictions, to the bit
    _, again = poyo_crossday.adapt_on_shots(donor, target, spikes[target.session_id], rows,
                                            params, seed=5)  # fmt: skip
    np.testing.assert_array_equal(again, pred)


def test_stage_writes_metrics_scores_with_intervals_and_the_report_puts_them_beside_ours(
    days: tuple,
) -> None:
    _, _, root = days
    params = small_params()
    stage.main(params, root)
    layout = Layout(root)
    folder = root / "metrics" / "reach" / "crossday_poyo"
    for name in DAYS:
        m = read_json(folder / f"{name}.json")
        s = m["poyo_shared"]
        assert np.isfinite(s["r2"]) and s["r2_lo"] <= s["r2_hi"]
        assert m["shared_group"] == list(DAYS)  # one 30-day window
    held = read_json(folder / f"{DAYS[-1]}.json")["transfer"]
    assert held["core_sessions"] == list(DAYS[:2]) and "lr 0.001" in held["budget"]
    table = pd.read_csv(folder / "sessions.csv")
    assert list(table["session"]) == list(DAYS)
    assert np.isfinite(table["poyo_transfer_0.25min"].iloc[-1])
    assert table["poyo_transfer_0.25min"].iloc[:2].isna().all()
    scores = read_scores(layout.scores("reach_crossday_poyo"))
    assert sorted(scores["r2"]["reach_poyo_shared"]) == sorted(DAYS)
    lo = scores["interval"]["r2_lo"]["reach_poyo_shared"][DAYS[0]]
    assert lo == pytest.approx(table["poyo_shared_lo"].iloc[0])
    assert DAYS[-1] in scores["fewshot_r2"]["reach_poyo_transfer"]
    # the report: POYO's columns beside ours in results/reach_crossday.csv
    ours = root / "metrics" / "reach" / "crossday"
    ours.mkdir(parents=True)
    pd.DataFrame({"session": list(DAYS), "monkey": "indy", "date": "d", "shared": 0.5}).to_csv(
        ours / "sessions.csv", index=False
    )
    empty = pd.DataFrame(columns=list(stability_columns()))
    empty.to_csv(ours / "stability.csv", index=False)
    write_reach(layout, params)
    out = pd.read_csv(layout.results_dir / "reach_crossday.csv")
    assert list(out["session"]) == list(DAYS) and "shared" in out
    np.testing.assert_allclose(out["poyo_shared"], table["poyo_shared"])
    shutil.rmtree(ours)


def _stage_list(tmp: Path, optional_shared: list[str]) -> list[str]:
    shutil.copy(PROJECT / "dvc.yaml", tmp / "dvc.yaml")
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    params["optional_shared"] = optional_shared
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    out = subprocess.run(["dvc", "stage", "list", "--name-only"], cwd=tmp, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return out.split()


def test_stage_is_declared_only_when_optional_shared_lists_poyo(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run(["dvc", "init", "-q"], cwd=tmp_path, check=True)
    default = _stage_list(tmp_path, [])
    assert "reach_crossday" in default
    assert not [s for s in default if s.startswith("reach_crossday_poyo")]
    assert "reach_crossday_poyo@poyo" in _stage_list(tmp_path, ["poyo"])


def test_default_stages_gain_no_poyo_code() -> None:
    stages = yaml.safe_load((PROJECT / "dvc.yaml").read_text())["stages"]
    deps = stages["reach_crossday"]["deps"] + stages["report"]["deps"]
    assert not [d for d in deps if "poyo" in d]
    body = stages["reach_crossday_poyo"]
    assert body["foreach"] == "${optional_shared}"
    assert "src/npdecode/decode/poyo_crossday.py" in body["do"]["deps"]
