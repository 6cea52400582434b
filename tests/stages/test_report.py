import pandas as pd

from npdecode.formats.costs import write_cost
from npdecode.formats.files import write_json
from npdecode.params import params_from_dict
from npdecode.paths import Layout
from npdecode.stages import report


def _metrics(layout, model, sid, acc, ideal=0.9):
    path = layout.metrics(model, sid)
    path.parent.mkdir(parents=True, exist_ok=True)
    split = {"accuracy": acc, "top5": min(1, acc + 0.2), "balanced_accuracy": acc, "n": 20}
    write_json(
        path,
        {
            "session_id": sid,
            "specimen_id": "m1",
            "model": model,
            "train": split,
            "val": split,
            "test": split,
            "chance": 0.1,
            "n_units": 5,
            "ideal_accuracy": ideal,
            "ratio_to_ideal": acc / ideal,
            "poisson_plugin_accuracy": 0.3,
        },
    )
    pred = layout.predictions(model, sid)
    pred.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {"presentation_id": range(4), "actual": [-1, 0, 1, 1], "predicted": [-1, 0, 0, 1]}
    ).to_csv(pred, index=False)


def test_report_tables_and_plots(tmp_path, small_nwb):
    layout = Layout(tmp_path)
    for sid, (a, b) in {1: (0.6, 0.5), 2: (0.4, 0.8)}.items():
        _metrics(layout, "logreg", sid, a)
        _metrics(layout, "lstm", sid, b)
    fs = layout.fewshot("logreg", 1)
    fs.parent.mkdir(parents=True)
    write_json(
        fs,
        {
            "session_id": 1,
            "specimen_id": "m1",
            "chance": 0.1,
            "shots": {
                "1": {
                    "mean": 0.2,
                    "sd": 0.01,
                    "top5_mean": 0.5,
                    "balanced_accuracy_mean": 0.2,
                    "repeats": [{}, {}],
                }
            },
        },
    )
    (layout.reference(1)).parent.mkdir(parents=True, exist_ok=True)
    write_json(layout.reference(1), {})
    write_cost(layout.cost("bin@1"), {"stage": "bin@1", "wall_time_s": 2.5, "peak_rss_mb": 100})
    write_cost(layout.cost("bin@9"), {"stage": "bin@9", "wall_time_s": 1.0})  # not a session
    layout.raw_dir(1).mkdir(parents=True)
    layout.nwb(1).write_bytes(small_nwb.read_bytes())
    params = params_from_dict({"sessions": [1, 2]})
    report.main(params, root=tmp_path)

    summary = pd.read_csv(layout.results_dir / "summary.csv")
    assert sorted(summary["model"].unique()) == [
        "logreg",
        "lstm",
    ]  # reference/fewshot are not models
    assert len(summary) == 4 and summary["accuracy"].between(0, 1).all()
    assert report.best_models(summary) == {1: "logreg", 2: "lstm"}
    few = pd.read_csv(layout.results_dir / "fewshot_logreg.csv")
    assert list(few.columns[:3]) == ["session_id", "specimen_id", "k"]
    assert list(summary.columns[:3]) == ["session_id", "specimen_id", "model"]
    assert "mouse" not in " ".join(few.columns)
    for name in ("accuracy.png", "fewshot.png", "confusion_1.png", "confusion_2.png", "raster.png"):
        assert (layout.plots_dir / name).stat().st_size > 1000, name
    costs = pd.read_csv(layout.results_dir / "costs.csv")
    assert costs[["stage", "session_id", "wall_time_s"]].values.tolist() == [["bin", 1, 2.5]]
