"""Where every artifact lives: one function of the project root, model and session id.

dvc.yaml spells the same paths; `tests/test_dvc_yaml.py` checks that the two agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Layout:
    """Artifact paths under a project root (the folder holding dvc.yaml)."""

    root: Path = Path(".")

    def raw_dir(self, session_id: int) -> Path:
        return self.root / "data" / "raw" / f"session_{session_id}"

    def nwb(self, session_id: int) -> Path:
        return self.raw_dir(session_id) / f"session_{session_id}.nwb"

    def fetch_record(self, session_id: int) -> Path:
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

    def fetch_report(self, session_id: int) -> Path:
        """What fetch got and what it cost (beside the session folder, which stays byte-exact)."""
        return self.root / "data" / "raw" / f"session_{session_id}.report.json"

    def truth(self, session_id: int) -> Path:
        """Ground truth of a synthetic session (absent for real sessions)."""
        return self.raw_dir(session_id) / "truth.npz"

    def binned(self, session_id: int) -> Path:
        """(P, T, U) spike counts with presentation and unit ids (formats/binned.py)."""
        return self.root / "data" / "binned" / f"{session_id}.counts.npz"

    def binned_units(self, session_id: int) -> Path:
        return self.root / "data" / "binned" / f"{session_id}.units.parquet"

    def binned_presentations(self, session_id: int) -> Path:
        return self.root / "data" / "binned" / f"{session_id}.presentations.parquet"

    def bin_report(self, session_id: int) -> Path:
        return self.root / "data" / "binned" / f"{session_id}.report.json"

    def clean(self, session_id: int) -> Path:
        """The binned counts less the dropped units and presentations (same format)."""
        return self.root / "data" / "clean" / f"{session_id}.counts.npz"

    def clean_report(self, session_id: int) -> Path:
        return self.root / "data" / "clean" / f"{session_id}.report.json"

    def split_dir(self, session_id: int) -> Path:
        return self.root / "data" / "split" / str(session_id)

    def split_report(self, session_id: int) -> Path:
        return self.root / "data" / "split" / f"{session_id}.report.json"

    def reference(self, session_id: int) -> Path:
        return self.root / "metrics" / "reference" / f"{session_id}.json"

    def model(self, model: str, session_id: int) -> Path:
        return self.root / "models" / model / f"{session_id}.pt"

    def metrics(self, model: str, session_id: int) -> Path:
        return self.root / "metrics" / model / f"{session_id}.json"

    def fewshot(self, model: str, session_id: int) -> Path:
        return self.root / "metrics" / "fewshot" / model / f"{session_id}.json"

    def predictions(self, model: str, session_id: int) -> Path:
        return self.root / "predictions" / model / f"{session_id}.csv"

    def live_dir(self, model: str, session_id: int) -> Path:
        """DVCLive output (per-epoch learning curves) of a trained model."""
        return self.root / "dvclive" / model / str(session_id)

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


# path (relative, posix) -> the dvc.yaml stage that writes it; for error messages that say
# which stage to rerun
_PRODUCERS = (
    (r"data/raw/session_(\d+)(/.*)?$", r"fetch@\1"),
    (r"data/binned/(\d+)\..*$", r"bin@\1"),
    (r"data/clean/(\d+)\..*$", r"clean@\1"),
    (r"data/split/(\d+)(/.*|\.report\.json)?$", r"split@\1"),
    (r"metrics/reference/(\d+)\.json$", r"reference@\1"),
    (r"metrics/fewshot/transfer/.*$", "train_multisession"),
    (r"metrics/fewshot/(\w+)/(\d+)\.json$", r"fewshot_\1@\2"),
    (r"(metrics|models|predictions)/multisession(/.*)?$", "train_multisession"),
    (r"(?:metrics|models|predictions)/(\w+)/(\d+)\.\w+$", r"train_\1@\2"),
)


def producing_stage(path: str | Path) -> str | None:
    """The dvc.yaml stage that writes `path` (e.g. `split@1` for data/split/1/train.npz)."""
    text = Path(path).as_posix()
    for pattern, stage in _PRODUCERS:
        match = re.search(r"(?:^|/)" + pattern, text)
        if match:
            return match.expand(stage)
    return None
