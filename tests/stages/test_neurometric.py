"""Stage `neurometric` on a tiny synthetic session built by the real stages, and its report."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from npdecode.analyses.neurometric import ALL
from npdecode.decode.session import split_logits, train_model
from npdecode.errors import DataError
from npdecode.formats.files import read_json
from npdecode.formats.scores import read_scores
from npdecode.formats.split import load_session
from npdecode.params import params_from_dict
from npdecode.paths import Layout
from npdecode.report.neurometric import (
    areas_table,
    load_results,
    neurometric_table,
    plot_areas,
    plot_time,
    plot_units,
)
from npdecode.stages import neurometric, train
from tests.helpers import SPLIT_SESSION, copy_split_session

# 23 units after clean: CA1 4, LP 3, VISl 3, then areas of 1 or 2 units (skipped below 3)
SMALL = {
    **SPLIT_SESSION,  # the session of the shared `split_session` fixture
    "neurometric": {
        "units": [3, 10],
        "subsets": 2,
        "first_bins": [1, 5],
        "window_bins": 5,
        "bootstrap": 200,
    },
}


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory, split_session: Path) -> Path:
    """A project root with the tiny session split, its logreg metrics and neurometric JSON."""
    root = copy_split_session(split_session, tmp_path_factory.mktemp("neurometric") / "project")
    params = params_from_dict(SMALL)
    train.main(params, "logreg", 1, root)
    neurometric.main(params, 1, root)
    return root


def test_all_units_equal_the_train_stage_logreg(session: Path) -> None:
    layout = Layout(session)
    m = read_json(layout.neurometric(1))
    logreg = read_json(layout.metrics("logreg", 1))
    assert m["model"] == "logreg" and m["chance"] == logreg["chance"]
    everything = m["areas"][ALL]
    assert everything["n_units"] == logreg["n_units"]
    assert everything["units"][-1]["n"] == logreg["n_units"]
    assert everything["accuracy"] == logreg["test"]["accuracy"]
    assert everything["ci_low"] <= everything["accuracy"] <= everything["ci_high"]
    # subsets: n = 3 and 10, each the mean of its two subsets, then all the units
    rows = everything["units"]
    assert [(r["n"], r["all"], len(r["subsets"])) for r in rows] == [
        (3, False, 2),
        (10, False, 2),
        (23, True, 1),
    ]
    for r in rows:
        assert r["accuracy"] == pytest.approx(np.mean(r["subsets"]))
        assert 0.0 <= r["ci_low"] <= r["accuracy"] <= r["ci_high"] <= 1.0


def test_areas_below_the_smallest_n_are_skipped_and_counted(session: Path) -> None:
    m = read_json(Layout(session).neurometric(1))
    counts = load_session(Layout(session).split_dir(1), 1).units["area"].value_counts()
    assert set(m["areas"]) == {ALL, *counts.index[counts >= 3]}
    assert m["skipped"]["areas"] == {a: int(n) for a, n in counts.items() if n < 3}
    assert m["skipped"]["n"] == len(m["skipped"]["areas"]) > 0
    assert m["skipped"]["min_units"] == 3
    for area, a in m["areas"].items():
        assert a["n_units"] == (counts.sum() if area == ALL else counts[area])


def test_time_course_with_all_bins_equals_the_full_window_decoder(session: Path) -> None:
    layout = Layout(session)
    m = read_json(layout.neurometric(1))
    data = load_session(layout.split_dir(1), 1)
    params = params_from_dict(SMALL)
    for a in m["areas"].values():
        first = a["time"]["first"]
        assert [(r["start_bin"], r["stop_bin"]) for r in first] == [(0, 1), (0, 5), (0, 10)]
        assert first[-1]["stop_s"] == pytest.approx(10 * data.bin_width_s)
        assert first[-1]["accuracy"] == a["units"][-1]["accuracy"] == a["accuracy"]
        assert [(r["start_bin"], r["stop_bin"]) for r in a["time"]["window"]] == [
            (s, s + 5) for s in range(6)
        ]
    # and equals a decoder fitted afresh on the area's units, outside the analysis
    area = next(a for a in m["areas"] if a != ALL)
    cols = np.flatnonzero(data.units["area"].to_numpy() == area)
    net, _ = train_model("logreg", data.select(cols), params.train)
    fresh = (split_logits(net, data.select(cols), "test", 1024).argmax(1) == data.test.y).mean()
    assert m["areas"][area]["time"]["first"][-1]["accuracy"] == fresh
    # the early window decodes no better than the full one on this session
    assert m["areas"][ALL]["time"]["first"][0]["accuracy"] < m["areas"][ALL]["accuracy"]


def test_diagnostics_are_measured(session: Path) -> None:
    d = read_json(Layout(session).neurometric(1))["diagnostics"]
    report = read_json(Layout(session).clean_report(1))
    assert d["n_units"] == 23 and 0 < d["n_visual_units"] < 23
    assert d["presentations_dropped_fraction"] == pytest.approx(
        1 - report["presentations"]["kept"] / report["presentations"]["total"]
    )
    assert 0 < d["median_rate_hz"] < 100 and 0 < d["selective_fraction"] <= 1


def test_stage_is_deterministic(session: Path, tmp_path: Path) -> None:
    twin = tmp_path / "twin"
    shutil.copytree(session, twin)
    neurometric.main(params_from_dict(SMALL), 1, twin)
    a, b = (Layout(r).neurometric(1).read_bytes() for r in (session, twin))
    assert a == b
    scores = read_scores(Layout(twin).scores("neurometric_1"))["neurometric"]
    assert scores["all"]["1"] == read_json(Layout(twin).neurometric(1))["areas"]["all"]["accuracy"]


def test_an_area_the_session_lacks_is_an_error(session: Path) -> None:
    params = params_from_dict({**SMALL, "neurometric": {**SMALL["neurometric"], "areas": ["LGd"]}})
    before = Layout(session).neurometric(1).read_bytes()
    with pytest.raises(DataError, match=r"session 1 has no units in area 'LGd'"):
        neurometric.main(params, 1, session)
    assert Layout(session).neurometric(1).read_bytes() == before  # nothing written


def test_report_tables_and_figures(session: Path, tmp_path: Path) -> None:
    results = load_results(Layout(session), (1, 2))  # session 2 has no results: left out
    assert list(results) == [1]
    table = neurometric_table(results)
    assert set(table["analysis"]) == {"units", "first_bins", "window"}
    assert table["accuracy"].between(0, 1).all() and (table["ci_low"] <= table["ci_high"]).all()
    areas = areas_table(results)
    skipped = areas[areas["skipped"]]
    assert (
        dict(zip(skipped["area"], skipped["n_units"], strict=True))
        == (results[1]["skipped"]["areas"])
    )
    assert (
        skipped["accuracy"].isna().all() and areas.loc[~areas["skipped"], "accuracy"].notna().all()
    )
    assert areas["area"].iloc[0] == ALL
    for name, draw in (
        ("units", lambda p: plot_units(table, p)),
        ("areas", lambda p: plot_areas(table, p)),
        ("time", lambda p: plot_time(table, areas, p)),
    ):
        path = tmp_path / f"neurometric_{name}.png"
        draw(path)
        assert path.stat().st_size > 10_000, name
