"""Run costs: one record per stage run in the git-ignored costs/, printed as one table."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import pandas as pd

from npdecode.formats.costs import main, read_costs, write_cost


def _write(folder: Path) -> None:
    write_cost(folder / "bin@1.json", {"stage": "bin@1", "wall_time_s": 2.5, "peak_rss_mb": 100})
    write_cost(folder / "bin@9.json", {"stage": "bin@9", "wall_time_s": 1.0})
    write_cost(folder / "report.json", {"stage": "report", "wall_time_s": 0.5})
    (folder / "train_lstm@1.json").write_text("{not json")  # a hand edit


def test_read_costs_keeps_the_sessions_asked_for_and_survives_a_bad_record(tmp_path: Path) -> None:
    _write(tmp_path)
    table = read_costs(tmp_path, (1,))
    assert table[["stage", "wall_time_s"]].values.tolist()[:2] == [["bin", 2.5], ["report", 0.5]]
    assert table["stage"].tolist() == ["bin", "report", "train_lstm"]
    assert pd.isna(table.loc[2, "wall_time_s"])  # the unreadable record: its stage, no figures
    assert sorted(read_costs(tmp_path)["session_id"].dropna().tolist()) == [1, 1, 9]


def test_the_command_prints_or_writes_the_table(tmp_path: Path) -> None:
    _write(tmp_path / "costs")
    out = io.StringIO()
    with redirect_stdout(out):
        main(["--root", str(tmp_path)])
    assert out.getvalue().splitlines()[0].startswith("stage,session_id,wall_time_s")
    assert "bin,9,1.0" in out.getvalue()
    main(["--root", str(tmp_path), "--out", str(tmp_path / "t.csv")])
    assert pd.read_csv(tmp_path / "t.csv")["stage"].tolist() == [
        "bin",
        "bin",
        "report",
        "train_lstm",
    ]


def test_reaching_and_matrix_stages_keep_their_model_and_session_name(tmp_path: Path) -> None:
    _write(tmp_path)
    name = "indy_20160622_01"
    write_cost(tmp_path / f"reach_train@lstm-{name}.json", {"wall_time_s": 3.0})
    table = read_costs(tmp_path)
    row = table[table["stage"] == "reach_train_lstm"]
    assert row["session_id"].tolist() == [name] and row["wall_time_s"].tolist() == [3.0]
    assert "1" in table["session_id"].tolist()  # integer ids beside names: one type (text)
