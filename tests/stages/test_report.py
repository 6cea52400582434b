import pandas as pd
import pytest

from npdecode.formats.files import read_json, write_json
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
    # every draw's predictions of two few-shot learners on the same draws: lstm is right on
    # every presentation, logreg on half
    for model, predicted in (("logreg", [-1, 0, 0, 0]), ("lstm", [-1, 0, 1, 1])):
        if model == "lstm":
            layout.fewshot("lstm", 1).parent.mkdir(parents=True)
            write_json(layout.fewshot("lstm", 1), read_json(fs))
        path = layout.fewshot_predictions(model, 1)
        path.parent.mkdir(parents=True)
        pd.DataFrame(
            {
                "k": 1,
                "repeat": [0] * 4 + [1] * 4,
                "seed": [11] * 4 + [12] * 4,
                "presentation_id": list(range(4)) * 2,
                "actual": [-1, 0, 1, 1] * 2,
                "predicted": predicted * 2,
            }
        ).to_csv(path, index=False)
    (layout.reference(1)).parent.mkdir(parents=True, exist_ok=True)
    write_json(layout.reference(1), {})
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
    assert {"accuracy_lo", "accuracy_hi"} <= set(summary.columns)
    # paired comparisons: same test presentations (models), same draws (few-shot)
    comp = pd.read_csv(layout.results_dir / "comparisons.csv")
    models = comp[comp["kind"] == "model"]
    assert sorted(models["session_id"]) == [1, 2]
    assert (models[["model_a", "model_b"]].to_numpy() == ["logreg", "lstm"]).all()
    assert (models["difference"] == 0).all() and (models["p_value"] == 1).all()
    assert models["verdict"].str.startswith("no difference").all()
    few = comp[comp["kind"] == "fewshot"].iloc[0]
    assert (few["model_a"], few["model_b"], few["k"], few["n_draws"]) == ("logreg", "lstm", 1, 2)
    assert few["difference"] == pytest.approx(-0.5)
    assert few["difference_lo"] <= -0.5 <= few["difference_hi"]
    assert not (layout.results_dir / "costs.csv").exists()  # tracked results hold no run costs
    cost = read_json(layout.results_dir / "report.json")
    assert "wall_time_s" not in cost  # run costs live in the git-ignored costs/
    # no neurometric metrics: no neurometric figures, and flags say what is missing
    assert cost["neurometric"] == {"n_sessions": 0}
    assert not (layout.plots_dir / "neurometric_units.png").exists()
    flags = pd.read_csv(layout.results_dir / "flags.csv")
    assert flags["best_model"].tolist() == ["logreg", "lstm"] and not flags["near_chance"].any()
    assert flags["causes"].str.contains("run the neurometric stage").all()
    assert cost["near_chance"]["n_near_chance"] == 0
    medians = pd.read_csv(layout.results_dir / "medians.csv").set_index("model")
    assert medians.loc["lstm", "median_accuracy"] == pytest.approx(0.65)
