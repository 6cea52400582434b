"""What DVC shows: a few numbers per model and session, named by unique, sortable keys."""

from npdecode.formats.scores import (
    fewshot_scores,
    model_scores,
    read_scores,
    reference_scores,
    write_scores,
)


def test_scores_hold_test_figures_under_unique_keys(tmp_path):
    metrics = {
        "test": {"accuracy": 0.5, "top5": 0.9, "balanced_accuracy": 0.45, "n": 20},
        "accuracy_ci": [0.4, 0.6],  # not in `test`: not shown
        "val": {"accuracy": 0.7},
    }
    metrics["test"]["accuracy_ci"] = [0.3, 0.7]
    metrics["test"].update(top5_lo=0.8, top5_hi=0.95)  # as the train stages write them
    fewshot = {"shots": {"1": {"mean": 0.2, "sd": 0.1, "repeats": [{}, {}]}, "5": {"mean": 0.4}}}
    path = tmp_path / "scores" / "lstm_3.json"
    write_scores(path, model_scores("lstm", 3, metrics), fewshot_scores("lstm", 3, fewshot))
    assert read_scores(path) == {
        "acc": {"lstm": {"3": 0.5}},
        "top5": {"lstm": {"3": 0.9}},
        "bal_acc": {"lstm": {"3": 0.45}},
        "interval": {
            "acc_ci_lo": {"lstm": {"3": 0.3}},
            "acc_ci_hi": {"lstm": {"3": 0.7}},
            "top5_lo": {"lstm": {"3": 0.8}},
            "top5_hi": {"lstm": {"3": 0.95}},
        },
        "fewshot": {"lstm": {"3": {"k1": 0.2, "k5": 0.4}}},
    }
    assert "sha256" not in path.read_text()  # nothing a user would not compare


def test_reference_and_skipped_transfer(tmp_path):
    ref = {"chance": 0.1, "poisson_plugin": {"accuracy": 0.3}, "ideal": None}
    assert reference_scores(2, ref) == {"reference": {"2": {"chance": 0.1, "poisson_plugin": 0.3}}}
    assert fewshot_scores("transfer", 2, {"skipped": "no other session", "shots": {}}) == {}
