"""Where every artifact lives: one function of the project root, model and session id.

dvc.yaml spells the same paths; `tests/test_dvc_yaml.py` checks that the two agree.
Which stage writes a path (`producing_stage`) is read from dvc.yaml's outs themselves.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml import YAML

# a session id: an integer (Allen, twins) or a record's name (`indy_20160407_02`); spelled
# here, not imported from npdecode.params, since the AllenSDK environment imports this module
# and has no PyYAML
SessionId = int | str


@dataclass(frozen=True)
class Layout:
    """Artifact paths under a project root (the folder holding dvc.yaml)."""

    root: Path = Path(".")

    @property
    def params_ok(self) -> Path:
        """Written by `check_params` when params.yaml is valid; `fetch` (so every stage) waits on it."""
        return self.root / "data" / "params.ok"

    def raw_dir(self, session_id: SessionId) -> Path:
        return self.root / "data" / "raw" / f"session_{session_id}"

    def nwb(self, session_id: SessionId) -> Path:
        return self.raw_dir(session_id) / f"session_{session_id}.nwb"

    def fetch_record(self, session_id: SessionId) -> Path:
        """Where a real session's NWB came from and what it holds (allen/local sources)."""
        return self.raw_dir(session_id) / "fetch.json"

    @property
    def allen_manifest(self) -> Path:
        """AllenSDK's cache manifest: its cache folder is data/raw/, its NWB our raw NWB."""
        return self.root / "data" / "raw" / "manifest.json"

    @property
    def partial_dir(self) -> Path:
        """Unfinished downloads (`<name>.part` + sidecar), kept so a new run resumes them."""
        return self.root / "data" / "raw" / ".partial"

    def fetch_report(self, session_id: SessionId) -> Path:
        """What fetch got and what it cost (beside the session folder, which stays byte-exact)."""
        return self.root / "data" / "raw" / f"session_{session_id}.report.json"

    def truth(self, session_id: SessionId) -> Path:
        """Ground truth of a synthetic session (absent for real sessions)."""
        return self.raw_dir(session_id) / "truth.npz"

    def twin_record(self, session_id: SessionId) -> Path:
        """A synthetic twin's real session, mouse parameters and unit plan (preset allen)."""
        return self.raw_dir(session_id) / "twin.json"

    def binned(self, session_id: SessionId) -> Path:
        """(P, T, U) spike counts with presentation and unit ids (formats/binned.py)."""
        return self.root / "data" / "binned" / f"{session_id}.counts.npz"

    def binned_units(self, session_id: SessionId) -> Path:
        return self.root / "data" / "binned" / f"{session_id}.units.parquet"

    def binned_presentations(self, session_id: SessionId) -> Path:
        return self.root / "data" / "binned" / f"{session_id}.presentations.parquet"

    def bin_report(self, session_id: SessionId) -> Path:
        return self.root / "data" / "binned" / f"{session_id}.report.json"

    def clean(self, session_id: SessionId) -> Path:
        """The binned counts less the dropped units and presentations (same format)."""
        return self.root / "data" / "clean" / f"{session_id}.counts.npz"

    def clean_report(self, session_id: SessionId) -> Path:
        return self.root / "data" / "clean" / f"{session_id}.report.json"

    def split_dir(self, session_id: SessionId) -> Path:
        return self.root / "data" / "split" / str(session_id)

    def split_report(self, session_id: SessionId) -> Path:
        return self.root / "data" / "split" / f"{session_id}.report.json"

    def reference(self, session_id: SessionId) -> Path:
        return self.root / "metrics" / "reference" / f"{session_id}.json"

    def model(self, model: str, session_id: SessionId) -> Path:
        return self.root / "models" / model / f"{session_id}.pt"

    def metrics(self, model: str, session_id: SessionId) -> Path:
        return self.root / "metrics" / model / f"{session_id}.json"

    def fewshot(self, model: str, session_id: SessionId) -> Path:
        return self.root / "metrics" / "fewshot" / model / f"{session_id}.json"

    def neurometric(self, session_id: SessionId) -> Path:
        """Accuracy per brain area vs units and time, and the session's diagnostics."""
        return self.root / "metrics" / "neurometric" / f"{session_id}.json"

    def predictions(self, model: str, session_id: SessionId) -> Path:
        return self.root / "predictions" / model / f"{session_id}.csv"

    def fewshot_predictions(self, model: str, session_id: SessionId) -> Path:
        """Every few-shot draw's test predictions (model `transfer`: few-shot transfer)."""
        return self.root / "predictions" / "fewshot" / model / f"{session_id}.csv"

    def live_dir(self, model: str, session_id: SessionId) -> Path:
        """DVCLive output (per-epoch learning curves) of a trained model."""
        return self.root / "dvclive" / model / str(session_id)

    # --- the macaque reaching data set (params `reach_sessions`, dvc.yaml's reach_* stages)

    def reach_raw_dir(self, name: str) -> Path:
        """A reaching session's `.mat` (and a twin's truth), as fetched."""
        return self.root / "data" / "raw" / "reach" / name

    def reach_mat(self, name: str) -> Path:
        return self.reach_raw_dir(name) / f"{name}.mat"

    def reach_nwb(self, name: str) -> Path:
        """An NLB session's NWB (npdecode/nwb/nlb.py), placed instead of a `.mat`."""
        return self.reach_raw_dir(name) / f"{name}.nwb"

    def reach_truth(self, name: str) -> Path:
        """The twin's truth (formats/macaque_truth.py); absent for real sessions."""
        return self.reach_raw_dir(name) / f"{name}.truth.npz"

    def reach_fetch_report(self, name: str) -> Path:
        return self.root / "data" / "raw" / "reach" / f"{name}.report.json"

    def reach_split_dir(self, name: str) -> Path:
        """The reaching split folder (formats/reach_split.py)."""
        return self.root / "data" / "reach" / name

    def reach_split_report(self, name: str) -> Path:
        """What binning, cleaning (still periods, units) and the block split did."""
        return self.root / "data" / "reach" / f"{name}.report.json"

    def reach_metrics(self, model: str, name: str) -> Path:
        """R² of a decoder (`reference`: Wiener, Kalman, ideal) on a reaching session."""
        return self.root / "metrics" / "reach" / model / f"{name}.json"

    def reach_predictions(self, model: str, name: str) -> Path:
        """Decoded and true target per test bin (`reference`: one column pair per decoder)."""
        return self.root / "predictions" / "reach" / model / f"{name}.csv"

    def reach_model(self, model: str, name: str) -> Path:
        return self.root / "models" / "reach" / model / f"{name}.pt"

    def reach_fewshot(self, model: str, name: str) -> Path:
        return self.root / "metrics" / "reach" / "fewshot" / model / f"{name}.json"

    def scores(self, name: str) -> Path:
        """What DVC shows as metrics (`dvc exp show`, `dvc metrics diff`): a few numbers a
        user compares, per stage; `name` is e.g. `logreg_1`, `fewshot_lstm_1`, `multisession`."""
        return self.root / "scores" / f"{name}.json"

    def cost(self, stage: str) -> Path:
        """What a stage run cost (wall time, peak memory): git-ignored, no stage's input,
        never a DVC metric; `stage` as DVC names it, e.g. `train_lstm@1`."""
        return self.root / "costs" / f"{stage}.json"

    @property
    def costs_dir(self) -> Path:
        return self.root / "costs"

    @property
    def results_dir(self) -> Path:
        return self.root / "results"

    @property
    def plots_dir(self) -> Path:
        return self.root / "plots"


def _out_templates(stages: dict) -> list[tuple[str, str]]:
    """(output path template, stage name template) of every out, metric and plot of
    dvc.yaml's `stages`, with foreach (`name@${item}`) and matrix (`name@<v1>-<v2>`) names."""
    found = []
    for name, stage in stages.items():
        body = stage.get("do", stage)
        if "foreach" in stage:
            stage_name = f"{name}@${{item}}"
        elif "matrix" in stage:
            stage_name = f"{name}@" + "-".join(f"${{item.{k}}}" for k in stage["matrix"])
        else:
            stage_name = name
        for key in ("outs", "metrics", "plots"):
            for out in body.get(key, []):
                found.append((next(iter(out)) if isinstance(out, dict) else out, stage_name))
    return found


def _template_regex(template: str) -> str:
    """A regex of an out's path template: `${item}` / `${item.x}` match one path part."""
    parts = re.split(r"(\$\{item(?:\.\w+)?\})", template)
    return "".join(
        f"(?P<{p[2:-1].replace('.', '__')}>[^/]+?)" if p.startswith("${") else re.escape(p)
        for p in parts
    )


@functools.cache
def _producers(dvc_yaml: Path) -> list[tuple[re.Pattern[str], str]]:
    # read as DVC reads it (ruamel.yaml, which the AllenSDK environment has through hdmf)
    stages = YAML(typ="safe", pure=True).load(dvc_yaml.read_text())["stages"]
    # the most literal template first: models/multisession/... before models/${item.model}/...
    outs = sorted(_out_templates(stages), key=lambda o: -len(re.sub(r"\$\{[^}]*\}", "", o[0])))
    return [(re.compile(r"(?:^|/)" + _template_regex(out) + r"(/.*)?$"), st) for out, st in outs]


def producing_stage(path: str | Path, dvc_yaml: Path | None = None) -> str | None:
    """The dvc.yaml stage that writes `path` (e.g. `split@1` for data/split/1/train.npz),
    read from the outs dvc.yaml declares (the project's, or `dvc_yaml`)."""
    text = Path(path).as_posix()
    if dvc_yaml is None:  # a stage runs in the project root; else this checkout's dvc.yaml
        here = Path("dvc.yaml")
        dvc_yaml = here if here.is_file() else Path(__file__).resolve().parents[2] / "dvc.yaml"
    if not dvc_yaml.is_file():
        return None
    for pattern, stage in _producers(dvc_yaml.resolve()):
        match = pattern.search(text)
        if match:
            for key, value in match.groupdict().items():
                stage = stage.replace(f"${{{key.replace('__', '.')}}}", value)
            return stage
    return None
