import dataclasses
from pathlib import Path

import pytest
import yaml

from npdecode.params import Params, ParamsError, as_dict, load_params, params_from_dict
from npdecode.paths import Layout
from tests.helpers import committed_text


def test_project_params_yaml_is_valid_and_complete():
    # the committed file: the workspace's may hold an experiment's values (dvc exp run -S)
    raw = yaml.safe_load(committed_text("params.yaml"))
    params = params_from_dict(raw)
    # every field is written out explicitly: no hidden defaults behind a user's back
    assert raw == as_dict(params)


def test_defaults_match_params_yaml():
    """The dataclass defaults and params.yaml agree, so code and file describe one pipeline."""
    raw = yaml.safe_load(committed_text("params.yaml"))
    assert as_dict(Params()) == raw


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"trian": {}}, r"unknown key 'trian' \(did you mean 'train'\?\)"),
        ({"train": {"logreg": {"CC": 1.0}}}, r"unknown key 'train.logreg.CC'"),
        ({"train": {"logreg": {"C": 0}}}, r"train.logreg.C must be > 0"),
        ({"train": {"logreg": {"C": "big"}}}, r"train.logreg.C must be float, got str"),
        ({"bin": {"timesteps_per_frame": 2.5}}, r"bin.timesteps_per_frame must be int"),
        ({"bin": {"timesteps_per_frame": 0}}, r"bin.timesteps_per_frame must be >= 1"),
        (
            {"split": {"method": "shuffle"}},
            r"split.method must be one of \['time', 'random', 'last'\]",
        ),
        ({"neurometric": {"units": [10, 5]}}, r"neurometric.units must be a non-empty increasing"),
        ({"neurometric": {"first_bins": []}}, r"neurometric.first_bins must be a non-empty"),
        ({"neurometric": {"model": "svm"}}, r"neurometric.model must be one of"),
        ({"train": {"logreg": {"pca": 0}}}, r"train.logreg.pca must be >= 1"),
        ({"sessions": []}, r"sessions is empty"),
        ({"sessions": [1, 1]}, r"lists a session twice"),
        ({"sessions": [2.5]}, r"sessions\[0\] must be int or str, got float"),
        ({"optional_models": ["gat"]}, r"optional_models\[0\] must be one of \['stgat', 'poyo'\]"),
        ({"optional_models": ["stgat", "stgat"]}, r"optional_models lists a model twice"),
        ({"data": {"include_blank": "yes"}}, r"data.include_blank must be bool"),
        (
            {"split": {"val_fraction": 0.5, "test_fraction": 0.5}},
            r"val_fraction \+ split.test_fraction",
        ),
        ({"fetch": {"source": "local"}}, r"fetch.path must name a folder"),
        ({"clean": "none"}, r"clean must be a mapping"),
    ],
)
def test_bad_params_name_the_key(raw, match):
    with pytest.raises(ParamsError, match=match):
        params_from_dict(raw)


def test_load_params_reports_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("sessions: [1]\nbin: {timestep_per_frame: 5}\n")
    with pytest.raises(ParamsError, match=r"params.yaml: unknown key 'bin.timestep_per_frame'"):
        load_params(path)
    with pytest.raises(ParamsError, match="no such params file"):
        load_params(tmp_path / "missing.yaml")


def test_params_are_frozen_and_lists_become_tuples():
    p = params_from_dict({"sessions": [3, 4], "clean": {"areas": ["VIS*"]}})
    assert p.sessions == (3, 4) and p.clean.areas == ("VIS*",)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.sessions = (1,)  # type: ignore[misc]


def test_session_ids_may_be_names_as_well_as_integers():
    from npdecode.params import session_id_of

    p = params_from_dict({"sessions": [1, "indy_20160407_02", 715093703]})
    assert p.sessions == (1, "indy_20160407_02", 715093703)  # ints stay ints
    assert session_id_of("7") == 7 and session_id_of("indy_x") == "indy_x"
    assert Layout(Path("r")).split_dir("indy_x") == Path("r/data/split/indy_x")
    for bad in ("2x", "indy-1", "", True, 1.5):
        with pytest.raises(ParamsError, match=r"sessions\[0\]"):
            params_from_dict({"sessions": [bad]})


def test_a_model_section_splits_into_architecture_and_fit_declared_once():
    from npdecode.params import FitParams, LSTMParams, STGATParams

    # one flat section in params.yaml; the loader gives the model its architecture and
    # the training loop its fit, each from one dataclass
    p = params_from_dict({"train": {"stgat": {"lr": 0.01, "hidden": 3}}})
    assert p.train.stgat.arch == STGATParams(hidden=3)
    # the other fit keys keep ST-GAT's own defaults, not FitParams'
    assert p.train.stgat.fit == FitParams(lr=0.01, max_epochs=12, patience=6, schedule="cosine")
    assert p.train.lstm.fit == FitParams() and p.train.lstm.arch == LSTMParams()
    arch_keys = {f.name for f in dataclasses.fields(LSTMParams)}
    fit_keys = {f.name for f in dataclasses.fields(FitParams)}
    assert not arch_keys & fit_keys
    assert set(as_dict(p.train.lstm)) == arch_keys | fit_keys  # written back flat
    assert p.multisession.fit == FitParams()
    with pytest.raises(ParamsError, match=r"train\.stgat\.max_epochs must be >= 1"):
        params_from_dict({"train": {"stgat": {"max_epochs": 0}}})


def test_a_model_keeps_its_architecture_only_and_reads_older_checkpoints():
    from npdecode.models import build_model, model_spec

    train = params_from_dict({"train": {"lstm": {"hidden": 8, "lr": 0.5}}}).train
    dims = {"n_units": 5, "n_bins": 3, "n_classes": 4}
    model = build_model("lstm", dims, train.lstm.arch)
    _, stored = model_spec(model)
    assert stored == as_dict(train.lstm.arch) and "lr" not in stored
    older = {**stored, "lr": 0.5, "weight_decay": 0.01, "max_epochs": 9}  # before the split
    assert build_model("lstm", dims, older).p == train.lstm.arch


def test_with_overrides_sets_dotted_keys_as_dvc_s_does_and_leaves_the_input_alone() -> None:
    from npdecode.errors import ParamsError
    from npdecode.params import with_overrides

    raw = {"train": {"lstm": {"hidden": 128}}, "sessions": [1]}
    out = with_overrides(raw, ["train.lstm.hidden=64", "reach.models=[lstm, poyo]", "x.y=010"])
    assert out["train"]["lstm"]["hidden"] == 64 and raw["train"]["lstm"]["hidden"] == 128
    assert out["reach"] == {"models": ["lstm", "poyo"]}  # a missing section is created
    assert out["x"]["y"] == 8  # the value is YAML (1.1, as PyYAML reads it)
    with pytest.raises(ParamsError, match="dotted.key=value"):
        with_overrides(raw, ["train.lstm.hidden"])
