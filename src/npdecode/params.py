"""Load and validate `params.yaml` into frozen dataclasses, one per section.

Every key in params.yaml maps to a field here. An unknown key, a wrong type or an
out-of-range value raises `ParamsError` naming the dotted key (``train.logreg.C``),
so a typo fails before any stage does work.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError as RuamelError

from npdecode.errors import ParamsError
from npdecode.paths import SessionId  # noqa: F401  (re-exported: stages import it from here)

T = TypeVar("T")


def _p(
    default: Any, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False
) -> Any:
    """A dataclass field with a bound check: lo <= value (lo < value if lo_open) <= hi."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "lo_open": lo_open})


def _section(cls: type) -> Any:
    return field(default_factory=cls)


def _flat(default: Any) -> Any:
    """A dataclass field whose own fields sit in the parent's mapping in params.yaml (one flat
    `train.lstm` holds the LSTM's architecture and its fit); missing keys take `default`'s."""
    return field(default_factory=lambda: default, metadata={"flat": True})


# --- fetch -------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticParams:
    """The synthetic session: Allen-format NWB with image-tuned Poisson units.

    `preset: none` is the project's small benchmark world (sources/synthetic.py); its
    defaults are the fixed benchmark difficulty: do not retune them to flatter a model.
    `preset: allen` makes session ids 1-32 twins of the 32 real natural-scenes sessions
    (sources/twin.py): units, areas and response model come from each real session and
    its mouse; `unit_scale` (0, 1] shrinks every unit count of a twin (tests, laptops);
    n_images, n_repeats, n_blocks and seed apply to both.
    """

    preset: Literal["none", "allen"] = "none"
    n_units: int = _p(200, lo=1)
    n_images: int = _p(118, lo=2, hi=118)  # Allen's natural_scenes image ids 0..117
    n_repeats: int = _p(50, lo=3)
    n_blocks: int = _p(3, lo=1)
    tuning_strength: float = _p(1.6, lo=0.0)
    timing_strength: float = _p(1.0, lo=0.0)
    gain_sd: float = _p(0.2, lo=0.0, hi=2.0)
    sessions_per_mouse: int = _p(1, lo=1)
    unit_scale: float = _p(1.0, lo=0.0, lo_open=True, hi=1.0)
    seed: int = _p(0, lo=0)

    def __post_init__(self) -> None:
        if self.preset == "allen":
            # a twin's units, tuning, timing and gain are its mouse's (sources/twin.py):
            # a knob that would silently do nothing is refused instead
            unused = [
                f.name
                for f in dataclasses.fields(self)
                if f.name in _TWIN_UNUSED and getattr(self, f.name) != f.default
            ]
            if unused:
                raise ParamsError(
                    f"fetch.synthetic.{unused[0]} has no effect with preset allen (each twin "
                    "takes its units and response model from its real session and mouse); "
                    "leave it at its default, or use fetch.synthetic.unit_scale to shrink a twin"
                )
        elif self.unit_scale != 1.0:
            raise ParamsError(
                "fetch.synthetic.unit_scale shrinks a twin of preset allen; with preset none "
                "set fetch.synthetic.n_units instead"
            )


# SyntheticParams fields the allen preset does not use (see its __post_init__)
_TWIN_UNUSED = frozenset(
    {"n_units", "tuning_strength", "timing_strength", "gain_sd", "sessions_per_mouse"}
)


@dataclass(frozen=True)
class AllenParams:
    """How `fetch.source: allen` reaches the Allen Brain Observatory (not *what* it fetches).

    These knobs change how a download is attempted, never the bytes that land, so the
    fetch stage does not list them as DVC params (see `stages.fetch.UNTRACKED_PARAMS`).
    """

    # python of the separate AllenSDK env (scripts/setup_allen_env.sh); relative to the root
    python: str = ".venv-allen/bin/python"
    api_url: str = "http://api.brain-map.org"
    timeout_s: float = _p(120.0, lo=0.0, lo_open=True)  # a request stalled this long fails
    max_tries: int = _p(5, lo=1)  # total tries per request or download, not retries
    backoff_s: float = _p(10.0, lo=0.0)  # wait before try k+1: backoff_s * 2**(k-1), <= 10 min


@dataclass(frozen=True)
class FetchParams:
    source: Literal["synthetic", "allen", "local"] = "synthetic"
    path: str | None = None
    synthetic: SyntheticParams = _section(SyntheticParams)
    allen: AllenParams = _section(AllenParams)

    def __post_init__(self) -> None:
        if self.source == "local" and not self.path:
            raise ParamsError(
                "fetch.path must name a folder of NWB files when fetch.source is 'local'"
            )


# --- bin / clean / split ------------------------------------------------------------


@dataclass(frozen=True)
class BinParams:
    stimulus: str = "natural_scenes"
    timesteps_per_frame: int = _p(10, lo=1, hi=1000)


@dataclass(frozen=True)
class CleanParams:
    """Unit and presentation filters; every drop is counted in the clean report.

    Quality filters are off (null) by default, as the lab runs them.
    """

    quality: str | None = None
    isi_violations_max: float | None = None
    amplitude_cutoff_max: float | None = None
    presence_ratio_min: float | None = None
    areas: tuple[str, ...] = ()
    min_rate_hz: float = _p(0.1, lo=0.0)
    zscore_max: float | None = None
    zscore_min: float | None = None
    drop_invalid_presentations: bool = True


@dataclass(frozen=True)
class DataParams:
    include_blank: bool = True


@dataclass(frozen=True)
class GraphParams:
    method: Literal["correlation", "geometry"] = "correlation"
    k: int = _p(8, lo=1)


@dataclass(frozen=True)
class SplitParams:
    # time: per image, earliest train and latest test; random: per image, seeded;
    # last: the last presentations in time test, unstratified (the lab's old protocol)
    method: Literal["time", "random", "last"] = "time"
    val_fraction: float = _p(0.1, lo=0.0, lo_open=True, hi=0.5)
    test_fraction: float = _p(0.2, lo=0.0, lo_open=True, hi=0.5)
    seed: int = _p(0, lo=0)
    graph: GraphParams = _section(GraphParams)


# --- train --------------------------------------------------------------------------


@dataclass(frozen=True)
class LogregParams:
    """Multinomial logistic regression on per-unit summed (or binned) counts."""

    C: float = _p(0.01, lo=0.0, lo_open=True)
    features: Literal["summed", "binned"] = "summed"
    max_iter: int = _p(1000, lo=1)
    pca: int | None = _p(None, lo=1)  # first project on this many train-split PCs (PCA + LR)


@dataclass(frozen=True)
class FitParams:
    """Optimiser and stopping rule of one deep model: what the training loop reads
    (npdecode.decode.training.FitOptions), never the model. In params.yaml these keys sit in
    the model's own section (`train.lstm.lr` beside `train.lstm.hidden`, `multisession.lr`)."""

    lr: float = _p(1e-3, lo=0.0, lo_open=True)
    weight_decay: float = _p(1e-2, lo=0.0)
    max_epochs: int = _p(200, lo=1)
    patience: int = _p(12, lo=1)
    schedule: Literal["constant", "cosine"] = "constant"


# Architectures: what a model is built from (models/<model>.py) and what its checkpoint
# stores. They are declared here, not in models/, so that loading params.yaml (every stage,
# the fetch stage included) imports no torch and depends on no model's code.


@dataclass(frozen=True)
class LSTMParams:
    """LSTM over time bins, units as features (models/lstm.py): its architecture."""

    hidden: int = _p(128, lo=1)
    layers: int = _p(1, lo=1)
    input_dropout: float = _p(0.4, lo=0.0, hi=0.95)
    dropout: float = _p(0.3, lo=0.0, hi=0.95)


@dataclass(frozen=True)
class TransformerParams:
    """Transformer encoder over time bins feeding an LSTM head (models/transformer.py): its
    architecture."""

    d_model: int = _p(128, lo=1)
    heads: int = _p(4, lo=1)
    layers: int = _p(1, lo=1)
    ff: int = _p(256, lo=1)
    lstm_hidden: int = _p(128, lo=1)
    positions: Literal["learned", "sinusoidal"] = "learned"
    input_dropout: float = _p(0.4, lo=0.0, hi=0.95)
    dropout: float = _p(0.2, lo=0.0, hi=0.95)

    def __post_init__(self) -> None:
        if self.d_model % self.heads:
            raise ParamsError(
                f"train.transformer.d_model ({self.d_model}) must be divisible by "
                f"train.transformer.heads ({self.heads})"
            )


@dataclass(frozen=True)
class STGATParams:
    """GATv2 over the unit graph per time bin, then an LSTM over bins (models/stgat.py): its
    architecture."""

    hidden: int = _p(4, lo=1)
    heads: int = _p(1, lo=1)
    gat_layers: int = _p(1, lo=0)  # 0: the same decoder without graph attention (ablation)
    readout: int = _p(128, lo=1)
    lstm_hidden: int = _p(128, lo=1)
    input_dropout: float = _p(0.2, lo=0.0, hi=0.95)
    dropout: float = _p(0.3, lo=0.0, hi=0.95)
    edge_weight: bool = False


@dataclass(frozen=True)
class POYOParams:
    """POYO's architecture (models/poyo.py); the defaults are torch_brain's smallest published
    configuration (examples/poyo/configs/model/poyo_1.3M.yaml: dim 64, depth 6, 16 latents
    per 0.125 s).

    latent_step is in s: a window of length W has ceil(W / latent_step) steps of
    `latents_per_step` latents each.
    """

    dim: int = _p(64, lo=2)
    depth: int = _p(6, lo=0)
    dim_head: int = _p(64, lo=2)
    cross_heads: int = _p(2, lo=1)
    self_heads: int = _p(8, lo=1)
    latents_per_step: int = _p(16, lo=1)
    latent_step: float = _p(0.125, lo=0.0, lo_open=True)
    ffn_dropout: float = _p(0.2, lo=0.0, hi=0.95)
    lin_dropout: float = _p(0.4, lo=0.0, hi=0.95)
    atn_dropout: float = _p(0.2, lo=0.0, hi=0.95)
    emb_init_scale: float = _p(0.02, lo=0.0, lo_open=True)

    def __post_init__(self) -> None:
        if self.dim_head % 4:  # rotary embeddings turn half the head, in pairs
            raise ParamsError(f"poyo dim_head ({self.dim_head}) must be a multiple of 4")


# ST-GAT's fit defaults differ: each epoch costs far more, so a short cosine schedule
STGAT_FIT = FitParams(lr=3e-3, max_epochs=12, patience=6, schedule="cosine")


@dataclass(frozen=True)
class LSTMSection:
    """params `train.lstm`: the LSTM's architecture and its fit, one flat mapping."""

    fit: FitParams = _flat(FitParams())
    arch: LSTMParams = _flat(LSTMParams())


@dataclass(frozen=True)
class TransformerSection:
    """params `train.transformer`: the Transformer→LSTM's architecture and its fit."""

    fit: FitParams = _flat(FitParams())
    arch: TransformerParams = _flat(TransformerParams())


@dataclass(frozen=True)
class STGATSection:
    """params `train.stgat`: ST-GAT's architecture and its fit (defaults `STGAT_FIT`)."""

    fit: FitParams = _flat(STGAT_FIT)
    arch: STGATParams = _flat(STGATParams())


# POYO's fit: AdamW with no decay on its embeddings (decode/poyo.py), a constant rate
POYO_FIT = FitParams(lr=1e-3, weight_decay=1e-4, max_epochs=200, patience=12)
# poyo_1.3M made shallower for a CPU (a step costs 1/9: docs/poyo.md)
POYO_CPU = POYOParams(depth=2, dim_head=32, cross_heads=1, self_heads=4)


@dataclass(frozen=True)
class POYOSection:
    """params `train.poyo`: POYO's architecture and its fit (an optional model: it needs the
    `poyo` extra, torch_brain). Its schedule is constant: POYO's loop has no other."""

    fit: FitParams = _flat(POYO_FIT)
    arch: POYOParams = _flat(POYO_CPU)
    # adapting to a new session (transfer, the adapt command): after the unit and session
    # embeddings alone, this many epochs of every weight (0: embeddings only)
    adapt_full_epochs: int = _p(0, lo=0)

    def __post_init__(self) -> None:
        if self.fit.schedule != "constant":
            raise ParamsError("train.poyo.schedule must be constant (POYO's loop has no other)")


# a deep model's params section: `.arch` builds the model, `.fit` drives the training loop
DeepSection = LSTMSection | TransformerSection | STGATSection


@dataclass(frozen=True)
class TrainParams:
    device: str = "auto"
    seed: int = _p(0, lo=0)
    batch_size: int = _p(64, lo=1)
    amp: Literal["bf16", "fp16", "off"] = "bf16"
    logreg: LogregParams = _section(LogregParams)
    lstm: LSTMSection = _section(LSTMSection)
    transformer: TransformerSection = _section(TransformerSection)
    stgat: STGATSection = _section(STGATSection)
    poyo: POYOSection = _section(POYOSection)  # an optional model (`optional_models`)

    def deep(self, name: str) -> DeepSection:
        """The section `train.<name>` of deep model `name`: `.arch` builds the model, `.fit`
        drives the training loop."""
        section = getattr(self, name, None)
        if not isinstance(section, LSTMSection | TransformerSection | STGATSection):
            raise ValueError(f"{name!r} is not a deep model: lstm, transformer or stgat")
        return section

    def __post_init__(self) -> None:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ParamsError(
                f"train.device must be auto, cpu, cuda or cuda:N, got {self.device!r}"
            )


@dataclass(frozen=True)
class MultisessionParams:
    """One decoder across sessions and mice (models/multisession.py), and transfer with it.

    The core's architecture is that of `train.<core>`; its fit settings are `fit` (the keys
    lr, weight_decay, max_epochs, patience, schedule of this section).
    Transfer holds out mice (`group: all`) or sessions of one mouse (`group: mouse`) in
    `folds` folds drawn with `fold_seed`; a held-out session's new read-in is fitted on its
    k shots per image for a fixed budget, `adapt_epochs` at `adapt_lr` (no validation
    data: the strict few-shot protocol), which the adapt command uses too.
    """

    fit: FitParams = _flat(FitParams())
    group: Literal["mouse", "all"] = "all"
    core: Literal["lstm", "transformer"] = "lstm"
    latent: int = _p(128, lo=1)
    input_dropout: float = _p(0.4, lo=0.0, hi=0.95)
    transfer: bool = True
    folds: int = _p(4, lo=2)
    fold_seed: int = _p(0, lo=0)
    adapt_epochs: int = _p(30, lo=0)
    adapt_lr: float = _p(3e-3, lo=0.0, lo_open=True)
    readin_init: Literal["template", "random", "encoding"] = "template"
    readin_ridge: float = _p(1.0, lo=0.0, lo_open=True)
    readin_rank: int = _p(16, lo=1)  # encoding: template components the shots are fitted on
    adapt_head: bool = False  # a new read-in also trains the core's classifier (last layer)


@dataclass(frozen=True)
class FewshotParams:
    """k training presentations per image, drawn from the train split, `repeats` times.

    `protocol` (npdecode.decode.fewshot): strict, the learner sees its k*C shots and nothing
    else, and deep models train a fixed budget of `steps` optimiser steps (whole epochs,
    capped by their own max_epochs); or transductive, the old behaviour: whole-split
    normalisation and graph, early stopping on the validation split within `max_epochs` and
    `patience`.
    """

    protocol: Literal["strict", "transductive"] = "strict"
    shots: tuple[int, ...] = (1, 3, 5, 10)
    repeats: int = _p(5, lo=1)
    seed: int = _p(0, lo=0)
    steps: int = _p(600, lo=1)  # strict: the budget (bench/fewshot_budget.py, other sessions)
    max_epochs: int = _p(30, lo=1)  # transductive: the cap on each deep model's own
    patience: int = _p(6, lo=1)  # transductive only
    # strict deep learners: train the draws of one k as one batch (npdecode.decode.batched);
    # auto: on CUDA only (on a CPU it does not pay)
    batch_draws: Literal["auto", "on", "off"] = "auto"

    def __post_init__(self) -> None:
        if not self.shots or min(self.shots) < 1:
            raise ParamsError(
                f"fewshot.shots must be a non-empty list of ints >= 1, got {list(self.shots)}"
            )


@dataclass(frozen=True)
class NeurometricParams:
    """Accuracy per brain area vs number of units and vs time (analyses/neurometric.py).

    Every area (or those matching `areas`) and all units together are decoded from
    `subsets` random subsets of n units for each n in `units` below the area's size, and
    from all its units; the time course decodes all of an area's units from the first m
    bins (m in `first_bins`, and every bin) and, if `window_bins` is set, from a window of
    that many bins sliding by one bin. The decoder is `model` with its `train.<model>`
    settings.
    """

    model: Literal["logreg", "lstm", "transformer", "stgat"] = "logreg"
    units: tuple[int, ...] = (5, 10, 20, 40, 80, 160)
    subsets: int = _p(5, lo=1)
    areas: tuple[str, ...] = ()
    first_bins: tuple[int, ...] = (1, 2, 3, 4, 6)
    window_bins: int | None = _p(None, lo=1)
    bootstrap: int = _p(1000, lo=100)
    seed: int = _p(0, lo=0)

    def __post_init__(self) -> None:
        for key in ("units", "first_bins"):
            values = list(getattr(self, key))
            if not values or min(values) < 1 or values != sorted(set(values)):
                raise ParamsError(
                    f"neurometric.{key} must be a non-empty increasing list of ints >= 1, "
                    f"got {values}"
                )


@dataclass(frozen=True)
class FlagParams:
    """When a session counts as decoding near chance, and the checks of its likely causes."""

    near_chance: float = _p(5.0, lo=1.0)  # flag: best model's test accuracy < this x chance
    min_visual_units: int = _p(20, lo=0)  # units in LGd, LP and VIS* areas
    min_rate_hz: float = _p(0.5, lo=0.0)  # median unit rate during presentations
    min_selective_fraction: float = _p(0.05, lo=0.0, hi=1.0)  # image-selective units (p < 0.01)
    max_presentations_dropped: float = _p(0.2, lo=0.0, hi=1.0)  # by the clean stage
    max_units_dropped: float = _p(0.9, lo=0.0, hi=1.0)  # by the clean stage
    max_invalid_spikes: float = _p(0.1, lo=0.0, hi=1.0)  # fraction of spikes in invalid_times


@dataclass(frozen=True)
class ReachFewshotParams:
    """Few-shot on a reaching session: k minutes of contiguous training bins (strict: the
    learner sees its shots only; deep models train a fixed `steps` budget)."""

    minutes: tuple[float, ...] = (0.1, 0.5)
    repeats: int = _p(2, lo=1)
    seed: int = _p(0, lo=0)
    steps: int = _p(100, lo=1)

    def __post_init__(self) -> None:
        if not self.minutes or min(self.minutes) <= 0:
            raise ParamsError(
                f"reach.fewshot.minutes must be a non-empty list of numbers > 0, got "
                f"{list(self.minutes)}"
            )


# the deep decoders a reaching session may train (params reach.models), regression heads
ReachDeepModel = Literal["lstm", "transformer", "stgat", "poyo"]
REACH_MODELS: tuple[str, ...] = typing.get_args(ReachDeepModel)


@dataclass(frozen=True)
class ReachCrossdayParams:
    """The per-monkey shared decoder across days (issue 23, docs/crossday.md).

    `window_days`: a monkey's sessions (in date order) are cut into groups wherever two
    consecutive ones are more than this many days apart, one shared decoder per group
    (null: one group per monkey). `finetune`: also report the shared decoder fine-tuned on
    each session (every weight, `finetune_lr`, at most `finetune_epochs` epochs, early
    stopping on that session's validation rows; the shared weights are kept where no
    epoch beats them there), its own arm beside the plain shared decoder. `adapt_lr`: the
    learning rate of a new read-in on a later day's shots (transfer, `reach.fewshot.steps`
    steps from the earlier day's read-in on shared units), chosen on dev days.
    """

    window_days: float | None = 30.0
    finetune: bool = True
    finetune_lr: float = _p(0.0003, lo=0.0, lo_open=True)
    finetune_epochs: int = _p(10, lo=1)
    adapt_lr: float = _p(0.001, lo=0.0, lo_open=True)

    def __post_init__(self) -> None:
        if self.window_days is not None and self.window_days < 0:
            raise ParamsError(
                f"reach.crossday.window_days must be null or >= 0 days, got {self.window_days}"
            )


@dataclass(frozen=True)
class ReachParams:
    """The macaque reaching data set (O'Doherty & Sabes; docs/macaque.md).

    source: `twin` (the offline twin of each record session, `twin_minutes` long),
    `zenodo` (the record's .mat, md5-checked) or `local` (a .mat below `path`). Bins of
    `bin_width_s` (a whole number of 4 ms samples; the field uses 16-64 ms), a model reads
    `history` bins; `units` sorted units or threshold crossings per channel; `target`
    decoded; still periods (speed < `still_speed` mm/s for > `still_min_s` s) excluded.
    `models`: the deep decoders trained (Wiener, Kalman and the twin's ideal decoder are
    the reference stage's).
    """

    source: Literal["twin", "zenodo", "local"] = "twin"
    path: str | None = None
    twin_minutes: float = _p(2.0, lo=0.5, hi=600.0)
    bin_width_s: float = _p(0.04, lo=0.004, hi=0.2)
    history: int = _p(8, lo=1, hi=100)
    units: Literal["sorted", "crossings"] = "sorted"
    target: Literal["velocity", "position", "acceleration"] = "velocity"
    still_speed: float = _p(10.0, lo=0.0)
    still_min_s: float = _p(10.0, lo=0.0)
    models: tuple[ReachDeepModel, ...] = ("lstm",)
    max_epochs: int = _p(40, lo=1)  # deep models: their train.<model> settings, this cap
    fewshot: ReachFewshotParams = _section(ReachFewshotParams)
    crossday: ReachCrossdayParams = _section(ReachCrossdayParams)

    def __post_init__(self) -> None:
        if self.source == "local" and not self.path:
            raise ParamsError(
                "reach.path must name a folder of .mat files when reach.source is 'local'"
            )


@dataclass(frozen=True)
class ReportParams:
    raster_presentations: int = _p(8, lo=1)
    flags: FlagParams = _section(FlagParams)


# Session ids: Allen's are 9 digits; synthetic ones are small. The bound keeps every id
# derived from them (synthetic unit ids are session_id * 100000 + i) inside int64.
MAX_SESSION_ID = 10**12


OptionalModel = Literal["stgat", "poyo"]  # models without a stage of their own in dvc.yaml
SESSION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # safe in paths and dvc.yaml stage names


def integer_id(session_id: SessionId, what: str) -> int:
    """`session_id` as the integer that `what` (an Allen-format source or file) needs."""
    if isinstance(session_id, str):
        raise ParamsError(f"session {session_id!r}: {what} takes integer session ids")
    return session_id


def session_id_of(value: Any) -> SessionId:
    """A session id as params holds it: an int for an integer (or a string of digits, as a
    command line or a file name gives it), else the name itself."""
    if isinstance(value, str) and not value.isdigit():
        return value
    return int(value)


@dataclass(frozen=True)
class Params:
    sessions: tuple[SessionId, ...] = (1,)
    # sessions of the macaque reaching data set, named as the record names them
    # (npdecode.sources.macaque_sessions); their own dvc.yaml stages (reach_*)
    reach_sessions: tuple[str, ...] = ("indy_20160622_01",)
    # models dvc.yaml trains (train_stgat, fewshot_stgat) only when listed here
    optional_models: tuple[OptionalModel, ...] = ()
    # shared decoders beside ours that dvc.yaml trains (train_multisession_poyo) only when
    # listed here: POYO across sessions and its transfer on our folds (docs/poyo.md)
    optional_shared: tuple[Literal["poyo"], ...] = ()
    fetch: FetchParams = _section(FetchParams)
    bin: BinParams = _section(BinParams)
    clean: CleanParams = _section(CleanParams)
    data: DataParams = _section(DataParams)
    split: SplitParams = _section(SplitParams)
    train: TrainParams = _section(TrainParams)
    fewshot: FewshotParams = _section(FewshotParams)
    multisession: MultisessionParams = _section(MultisessionParams)
    neurometric: NeurometricParams = _section(NeurometricParams)
    reach: ReachParams = _section(ReachParams)
    report: ReportParams = _section(ReportParams)
    # CPU threads of each stage (torch, BLAS); null: the CPUs the process may use
    # (npdecode.threads). 1 by default: only one thread makes CPU training bitwise repeatable
    # (docs/experiments.md), so a rerun leaves git clean. Not a DVC param: like the machine,
    # it sets the speed of a run, not its results.
    threads: int | None = _p(1, lo=1)
    # processes that train few-shot draws side by side on a CPU, each with `threads` threads
    # (npdecode.decode.pool); null: as many as the CPUs the process may use hold. The same
    # bytes for any number, so not a DVC param either.
    workers: int | None = _p(None, lo=1)

    def __post_init__(self) -> None:
        if not self.sessions:
            raise ParamsError("sessions is empty: list at least one session id")
        for i, sid in enumerate(self.sessions):
            if isinstance(sid, str):
                if not SESSION_NAME.match(sid):
                    raise ParamsError(
                        f"sessions[{i}] is {sid!r}: a session name starts with a letter and "
                        "holds only letters, digits and _ (e.g. indy_20160407_02)"
                    )
            elif not 1 <= sid <= MAX_SESSION_ID:
                raise ParamsError(
                    f"sessions[{i}] is {sid}: a session id is a positive integer up to "
                    f"{MAX_SESSION_ID} (Allen ids have 9 digits, synthetic ones are small) "
                    "or a name such as indy_20160407_02"
                )
        if len(set(self.sessions)) != len(self.sessions):
            raise ParamsError(f"sessions lists a session twice: {list(self.sessions)}")
        if len(set(self.reach_sessions)) != len(self.reach_sessions):
            raise ParamsError(f"reach_sessions lists a session twice: {list(self.reach_sessions)}")
        for i, name in enumerate(self.reach_sessions):
            if not SESSION_NAME.match(name):
                raise ParamsError(
                    f"reach_sessions[{i}] is {name!r}: a record session name such as "
                    "indy_20160407_02"
                )
        if len(set(self.optional_models)) != len(self.optional_models):
            raise ParamsError(f"optional_models lists a model twice: {list(self.optional_models)}")
        if self.split.val_fraction + self.split.test_fraction >= 1:
            raise ParamsError("split.val_fraction + split.test_fraction must be < 1")


# --- loading ------------------------------------------------------------------------


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml; raise ParamsError naming the bad key."""
    path = Path(path)
    if not path.exists():
        raise ParamsError(f"{path}: no such params file (run from the project root)")
    text = path.read_text()
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ParamsError(f"{path}: not valid YAML: {err}") from err
    refuse_ambiguous_values(raw, text, str(path))
    return params_from_dict(raw or {}, source=str(path))


def refuse_ambiguous_values(raw: Any, text: str, source: str) -> None:
    """Raise ParamsError where DVC reads params.yaml differently from `yaml.safe_load`.

    PyYAML speaks YAML 1.1 and DVC (ruamel.yaml) YAML 1.2: `010` is 8 to one and 10 to the
    other, `yes` is True or the string 'yes', `1e3` a string or 1000.0. A value read two
    ways would pass this check and then mean something else in dvc.yaml's `foreach` and
    `${...}`, so it is refused, naming the key and both readings.
    """
    try:
        dvc_reading = YAML(typ="safe", pure=True).load(text)
    except RuamelError as err:
        raise ParamsError(f"{source}: not valid YAML 1.2 (as DVC reads it): {err}") from err
    where = _first_difference(raw, dvc_reading, "")
    if where is not None:
        key, ours, theirs = where
        raise ParamsError(
            f"{source}: {key or 'the file'} reads as {ours!r} in YAML 1.1 but as {theirs!r} in "
            "YAML 1.2, which DVC uses: write it so both agree (e.g. 10 not 010, true not yes, "
            "1.0e+3 not 1e3, a quoted string for text)"
        )


def _first_difference(a: Any, b: Any, key: str) -> tuple[str, Any, Any] | None:
    """The first (dotted key, value in `a`, value in `b`) where two parsed trees differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return key, list(a), list(b)
        for k in a:
            found = _first_difference(a[k], b[k], f"{key}.{k}" if key else str(k))
            if found is not None:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = _first_difference(x, y, f"{key}[{i}]")
            if found is not None:
                return found
        return None
    # 1 == 1.0 == True in Python: the types must agree too
    if type(a) is not type(b) or a != b:
        return key, a, b
    return None


def with_overrides(raw: Mapping[str, Any], items: Sequence[str]) -> dict[str, Any]:
    """A copy of parsed params with each `dotted.key=value` of `items` set, the value read as
    YAML, as `dvc exp run -S` sets them (the benches' `-S`/`--set`); sections missing on the
    way are created, and `params_from_dict` then validates the keys."""
    out = copy.deepcopy(dict(raw))
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParamsError(f"override {item!r}: write it as dotted.key=value")
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[leaf] = yaml.safe_load(value)
    return out


SESSIONS_COMMAND = "python -m npdecode.sources.sessions --write"


def params_from_dict(raw: Mapping[str, Any], source: str = "params") -> Params:
    """Build Params from a plain mapping (e.g. parsed YAML)."""
    try:
        if isinstance(raw, Mapping) and isinstance(raw.get("sessions"), str):
            raise ParamsError(
                f"sessions is the string {raw['sessions']!r}, but dvc.yaml's foreach needs an "
                f"explicit list of session ids: expand it with `{SESSIONS_COMMAND}` (it lists "
                "the matching sessions and writes them into params.yaml)"
            )
        return _build(Params, raw, "")
    except ParamsError as err:
        raise ParamsError(f"{source}: {err}") from None


def section_from_dict(cls: type[T], data: Mapping[str, Any], key: str) -> T:
    """One params section (e.g. `LSTMParams` at key `train.lstm`) from a plain mapping,
    validated like params.yaml; missing fields take their defaults."""
    return _build(cls, data, key)


def as_dict(obj: Any) -> Any:
    """The plain (YAML-ready) form of a params dataclass; tuples become lists."""
    if dataclasses.is_dataclass(obj):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = as_dict(getattr(obj, f.name))
            out.update(value if f.metadata.get("flat") else {f.name: value})
        return out
    if isinstance(obj, tuple):
        return [as_dict(v) for v in obj]
    return obj


def _key(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _keys(cls: type) -> list[str]:
    """The params.yaml keys of a section: its fields, a flat field's own keys in its place."""
    hints = typing.get_type_hints(cls)
    out: list[str] = []
    for f in dataclasses.fields(cls):
        out += _keys(hints[f.name]) if f.metadata.get("flat") else [f.name]
    return out


def _build(cls: type, data: Any, prefix: str, base: Any = None) -> Any:
    """`cls` from the mapping `data` (keys under `prefix`); missing keys take `base`'s
    values (a flat field's default) or the class defaults."""
    if not isinstance(data, Mapping):
        where = prefix or "params file"
        raise ParamsError(f"{where} must be a mapping, got {type(data).__name__}")
    known = _keys(cls)
    for key in data:
        if key not in known:
            hint = difflib.get_close_matches(str(key), known, n=1)
            tip = f" (did you mean {_key(prefix, hint[0])!r}?)" if hint else ""
            raise ParamsError(f"unknown key {_key(prefix, str(key))!r}{tip}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        name = f.name
        if f.metadata.get("flat"):
            default = f.default_factory()  # type: ignore[misc,operator]  # _flat sets one
            own = {k: v for k, v in data.items() if k in _keys(hints[name])}
            kwargs[name] = _build(hints[name], own, prefix, default)
        elif name in data:
            value = _coerce(hints[name], data[name], _key(prefix, name))
            _check_bounds(value, f.metadata, _key(prefix, name))
            kwargs[name] = value
    if base is not None:
        return dataclasses.replace(base, **kwargs)
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        errors = []
        for option in inner:  # the first type that takes the value (int | str: int first)
            try:
                return _coerce(option, value, key)
            except ParamsError as err:
                errors.append(err)
        if len(inner) == 1:
            raise errors[0]
        names = " or ".join(getattr(a, "__name__", str(a)) for a in inner)
        raise ParamsError(f"{key} must be {names}, got {type(value).__name__} {value!r}")
    if origin is Literal:
        if value not in args:
            raise ParamsError(f"{key} must be one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ParamsError(f"{key} must be a list, got {type(value).__name__} {value!r}")
        return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    return _coerce_scalar(tp, value, key)


def _coerce_scalar(tp: type, value: Any, key: str) -> Any:
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, int | float) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp)
    if ok is None:
        raise TypeError(f"unsupported params field type {tp!r} for {key}")
    if not ok:
        raise ParamsError(f"{key} must be {tp.__name__}, got {type(value).__name__} {value!r}")
    return float(value) if tp is float else value


def _check_bounds(value: Any, meta: Mapping[str, Any], key: str) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value <= lo if meta.get("lo_open") else value < lo):
        op = ">" if meta.get("lo_open") else ">="
        raise ParamsError(f"{key} must be {op} {lo}, got {value!r}")
    if hi is not None and value > hi:
        raise ParamsError(f"{key} must be <= {hi}, got {value!r}")
