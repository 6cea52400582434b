"""The training loop shared by the deep decoders (lstm, transformer, stgat).

AdamW on cross-entropy; after every epoch the model is scored on the validation split and
the weights with the best validation accuracy are kept (ties go to the lower validation
loss); training stops after `patience` epochs without improvement. The test split is never
seen here. Batch order comes from a seeded `torch.Generator`, dropout from the seeded global
stream, so the same options give the same model on the CPU. On CUDA, forward passes run
under autocast (bf16, or fp16 with a GradScaler); on the CPU in float32 unless
`FitOptions.cpu_autocast` asks for the same autocast there (a CPU stand-in for CUDA's mixed
precision, so that its code runs in the default tests).

`fit` takes in-memory arrays; `fit_batches` takes any `BatchSource` (the shared decoder's
batches, each read from one session's files); both run the same loop.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from npdecode.decode.task import ClassificationTask, Task
from npdecode.errors import ParamsError, TrainingError
from npdecode.params import FitParams, TrainParams

log = logging.getLogger(__name__)
# the loop's default task: class labels (the loss and the selection score need no class count)
CLASSES = ClassificationTask(0)
DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class FitOptions:
    """How to train: optimiser, stopping rule, batching, device, precision, seed.

    The optimiser and stopping fields are params' `FitParams` (their defaults too), the
    rest `train.*`; `fit_options` fills them from params."""

    lr: float = FitParams.lr
    weight_decay: float = FitParams.weight_decay
    max_epochs: int = FitParams.max_epochs
    patience: int = FitParams.patience  # epochs without a better val accuracy before stopping
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: Literal["bf16", "fp16", "off"] = "bf16"  # used on CUDA only (unless cpu_autocast)
    cpu_autocast: bool = False  # apply `amp` on the CPU too: CUDA's precision path, on a CPU
    schedule: Literal["constant", "cosine"] = FitParams.schedule  # cosine: lr -> 0 at max_epochs
    key: str = ""  # the params section these come from (e.g. train.lstm), named in errors
    task: Task = CLASSES  # the loss and the selection score (early stopping)


def fit_options(
    train: TrainParams, fit_params: FitParams, key: str = "", task: Task | None = None
) -> FitOptions:
    """The loop's options of one deep model: its fit settings (from params `key`, e.g.
    `train.lstm`, named when training diverges) plus `train.*`."""
    return FitOptions(
        **{f.name: getattr(fit_params, f.name) for f in dataclasses.fields(FitParams)},
        batch_size=train.batch_size,
        seed=train.seed,
        device=train.device,
        amp=train.amp,
        key=key,
        task=CLASSES if task is None else task,
    )


@dataclass(frozen=True)
class Batch:
    """One step's data: the model is called as `model(*inputs)`; `y` (B,) are the labels."""

    inputs: tuple[Any, ...]
    y: torch.Tensor


class BatchSource(Protocol):
    """Where `fit_batches` gets its data: training batches in a seeded order, and the
    validation split in fixed batches (scored after every epoch)."""

    def n_train(self) -> int:
        """Training samples per epoch."""
        ...

    def n_val(self) -> int:
        """Validation samples."""
        ...

    def n_steps(self, batch_size: int) -> int:
        """Training batches per epoch."""
        ...

    def train_batches(
        self, batch_size: int, gen: torch.Generator, device: torch.device
    ) -> Iterator[Batch]:
        """One epoch of training batches, in an order drawn from `gen` only."""
        ...

    def val_batches(self, batch_size: int, device: torch.device) -> Iterator[Batch]:
        """The validation split, in a fixed order."""
        ...


class ArraySource:
    """In-memory (x (P, T, U), y (P,)) train and val arrays: the single-session path."""

    def __init__(
        self,
        train: tuple[np.ndarray, np.ndarray],
        val: tuple[np.ndarray, np.ndarray],
        device: torch.device,
    ) -> None:
        self.x_tr = torch.as_tensor(train[0]).to(device)
        self.y_tr = torch.as_tensor(train[1]).to(device)
        self.x_val, self.y_val = torch.as_tensor(val[0]), torch.as_tensor(val[1]).to(device)

    def n_train(self) -> int:
        return len(self.y_tr)

    def n_val(self) -> int:
        return len(self.y_val)

    def n_steps(self, batch_size: int) -> int:
        return -(-len(self.y_tr) // batch_size)

    def train_batches(
        self, batch_size: int, gen: torch.Generator, device: torch.device
    ) -> Iterator[Batch]:
        order = torch.randperm(len(self.y_tr), generator=gen).to(device)
        for i in range(0, len(self.y_tr), batch_size):
            idx = order[i : i + batch_size]
            yield Batch((self.x_tr[idx],), self.y_tr[idx])

    def val_batches(self, batch_size: int, device: torch.device) -> Iterator[Batch]:
        for i in range(0, len(self.y_val), batch_size):
            xb = self.x_val[i : i + batch_size].to(device, torch.float32)
            yield Batch((xb,), self.y_val[i : i + batch_size])


def resolve_device(spec: str) -> torch.device:
    """`auto` -> CUDA if present, else CPU; `cpu`, `cuda`, `cuda:N` as named (checked)."""
    if not DEVICE_RE.match(spec):
        raise ParamsError(f"train.device must be auto, cpu, cuda or cuda:N, got {spec!r}")
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ParamsError(f"train.device is {spec!r} but torch sees no CUDA device")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ParamsError(
                f"train.device is {spec!r} but only {torch.cuda.device_count()} CUDA devices exist"
            )
    return device


def autocast_dtype(amp: str, device: torch.device, on_cpu: bool = False) -> torch.dtype | None:
    """The autocast dtype for `amp` on `device`; None (float32) when amp is off, and off
    CUDA unless `on_cpu` (the CPU stand-in: bf16 or fp16 autocast on the CPU)."""
    if amp == "off" or device.type not in (("cuda", "cpu") if on_cpu else ("cuda",)):
        return None
    if device.type == "cpu":
        return torch.bfloat16 if amp == "bf16" else torch.float16
    if amp == "bf16" and not torch.cuda.is_bf16_supported():
        log.warning("train.amp is bf16 but %s has no bfloat16: using fp16", device)
        return torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device) global streams."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    x: np.ndarray | torch.Tensor,
    batch_size: int = 256,
    amp: torch.dtype | None = None,
) -> torch.Tensor:
    """(P, C) float32 logits of `model` (eval mode, on its own device) for x (P, T, U)."""
    device = next(model.parameters()).device
    model.eval()
    x = torch.as_tensor(x)
    out = []
    for i in range(0, len(x), batch_size):
        xb = x[i : i + batch_size].to(device, torch.float32)
        with _autocast(device, amp):
            out.append(model(xb).float())
    return torch.cat(out) if out else torch.zeros(0, 0, device=device)


def fit(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    opts: FitOptions,
    live_dir: Path | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train `model` on (x (P, T, U) float32, y (P,) int) with early stopping on `val`.

    Args:
        model: a freshly built decoder; trained in place.
        train, val: normalised inputs and class labels.
        opts: optimiser, stopping, batching, device and precision settings.
        live_dir: where DVCLive writes per-epoch learning curves (None: not logged).

    Returns:
        The model, on the training device and in eval mode, holding the best-val weights,
        and a dict of facts for the metrics JSON (epochs run, best epoch, best val accuracy,
        device, precision).
    """
    return fit_batches(model, ArraySource(train, val, resolve_device(opts.device)), opts, live_dir)


def fit_batches(
    model: nn.Module,
    source: BatchSource,
    opts: FitOptions,
    live_dir: Path | None = None,
    validate: bool = True,
    on_epoch: Callable[[int, nn.Module], None] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """`fit` on batches from `source` (e.g. one session per batch, read from disk).

    `max_epochs` epochs at most, each one pass over `source.train_batches` in an order
    seeded by `opts.seed`; after each, the whole validation split is scored and the best
    weights kept; stops after `patience` epochs without a better val accuracy.
    With `validate=False` no validation data is read: exactly `max_epochs` epochs run
    and the last weights are kept (a fixed budget, for learners that may see nothing
    but their training data: `fit_fixed`). `on_epoch(epoch, model)`, if given, is called
    after every epoch. Returns as `fit` does (with the last epoch's training loss and
    accuracy when `validate=False`).
    """
    device = resolve_device(opts.device)
    amp = autocast_dtype(opts.amp, device, opts.cpu_autocast)
    seed_everything(opts.seed)
    order_gen = torch.Generator().manual_seed(opts.seed)
    model.to(device)
    _check_source(source, validate)
    opt, sched, scaler = _optimiser(model, opts, source.n_steps(opts.batch_size), amp, device)
    live = _live(live_dir)
    task = opts.task
    best = {"score": -math.inf, "loss": float("inf"), "epoch": 0}
    best_state: dict[str, torch.Tensor] = {}
    bar = tqdm(range(1, opts.max_epochs + 1), desc="epochs", disable=None, leave=False)
    epoch = 0
    loss = acc = float("nan")
    for epoch in bar:
        batches = source.train_batches(opts.batch_size, order_gen, device)
        loss, acc = _train_epoch(model, opt, sched, scaler, batches, source.n_train(), amp, task)
        if not math.isfinite(loss):
            lr = f"{opts.key}.lr" if opts.key else "the learning rate"
            raise TrainingError(
                f"training diverged: the loss is {loss} at epoch {epoch} with lr {opts.lr:g}; "
                f"lower {lr} (or set train.amp: off if it happens only on CUDA)"
            )
        curves = {"train/loss": loss, f"train/{task.train_score_name}": acc}
        curves["train/lr"] = opt.param_groups[0]["lr"]  # at the end of the epoch
        if validate:
            batches = source.val_batches(opts.batch_size, device)
            val_loss, val_acc = _score(model, batches, amp, task)
            curves.update({"val/loss": val_loss, f"val/{task.score_name}": val_acc})
        _log_epoch(live, bar, epoch, curves, loud=validate)
        if on_epoch is not None:
            on_epoch(epoch, model)
        if not validate:  # a fixed budget: the last epoch's weights are kept
            continue
        if val_acc > best["score"] or (val_acc == best["score"] and val_loss < best["loss"]):
            best = {"score": val_acc, "loss": val_loss, "epoch": epoch}
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best["epoch"] >= opts.patience:
            break
    bar.close()
    if validate:
        model.load_state_dict(best_state)
    info = {
        "epochs": epoch,
        "best_epoch": best["epoch"] if validate else epoch,
        f"best_val_{task.score_name}": best["score"] if validate else None,
        "device": str(device),
        "amp": str(amp).removeprefix("torch.") if amp is not None else "off",
        "n_parameters": sum(p.numel() for p in model.parameters()),
    }
    if not validate:
        info.update({"train_loss": loss, f"train_{task.train_score_name}": acc})
    if live is not None:
        live.summary.update(
            {k: v for k, v in info.items() if k not in ("device", "amp") and v is not None}
        )
        live.end()
    log.log(
        logging.INFO if validate else logging.DEBUG,
        "stopped after %d epochs; best val %s %.3f at epoch %d",
        epoch,
        task.score_name,
        best["score"],
        best["epoch"],
    )
    return model.eval(), info


def fit_fixed(
    model: nn.Module,
    train: tuple[np.ndarray, np.ndarray],
    opts: FitOptions,
    on_epoch: Callable[[int, nn.Module], None] | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Train `model` for exactly `opts.max_epochs` epochs on (x (P, T, U), y (P,)), with no
    validation data, and keep the last weights (a fixed budget: the strict few-shot
    protocol, where a learner has no labelled data to stop on besides its training set).

    `fit_batches(..., validate=False)` on the in-memory arrays; `on_epoch(epoch, model)` is
    called after every epoch (e.g. to choose a budget on other sessions,
    `bench/fewshot_budget.py`); the model is back in train mode after it.

    Returns the model, on the training device and in eval mode, and a dict of facts
    (epochs, final training loss and accuracy, device, precision).
    """
    x, y = train
    none = (x[:0], y[:0])  # no validation data
    source = ArraySource(train, none, resolve_device(opts.device))
    return fit_batches(model, source, opts, validate=False, on_epoch=on_epoch)


def _optimiser(
    model: nn.Module,
    opts: FitOptions,
    steps_per_epoch: int,
    amp: torch.dtype | None,
    device: torch.device,
) -> tuple[
    torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None, torch.amp.GradScaler | None
]:
    """AdamW over the trainable parameters (a frozen core is left out), its schedule
    (stepped per batch, over `max_epochs` epochs of `steps_per_epoch`) and, for fp16, a
    gradient scaler."""
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=opts.lr,
        weight_decay=opts.weight_decay,
    )
    steps = opts.max_epochs * steps_per_epoch
    sched = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        if opts.schedule == "cosine"
        else None
    )
    return opt, sched, grad_scaler(amp, device)


def grad_scaler(amp: torch.dtype | None, device: torch.device) -> torch.amp.GradScaler | None:
    """A gradient scaler for fp16 autocast on `device` (CUDA's, or the CPU stand-in's)."""
    return torch.amp.GradScaler(device.type) if amp is torch.float16 else None


def _check_source(source: BatchSource, validate: bool) -> None:
    if source.n_train() == 0:
        raise ValueError("fit needs a non-empty training set")
    if validate and source.n_val() == 0:
        raise ValueError("fit needs a non-empty train and val split")


def _log_epoch(live: Any, bar: Any, epoch: int, curves: dict[str, float], loud: bool) -> None:
    """One epoch's curves to DVCLive (if any), the progress bar and the log (every 10th
    epoch at INFO when `loud`: progress for logs without a TTY, e.g. SLURM, dvc repro)."""
    if live is not None:
        for name, value in curves.items():
            live.log_metric(name, value)
        live.next_step()
    bar.set_postfix({k.replace("/", " "): f"{v:.3f}" for k, v in curves.items()})
    log.log(
        logging.INFO if loud and (epoch == 1 or epoch % 10 == 0) else logging.DEBUG,
        "epoch %d: %s",
        epoch,
        ", ".join(f"{k} {v:.3f}" for k, v in curves.items() if k != "train/lr"),
    )


@torch.no_grad()
def _score(
    model: nn.Module, batches: Iterator[Batch], amp: torch.dtype | None, task: Task
) -> tuple[float, float]:
    """(loss, selection score) of `model` in eval mode over all `batches` pooled."""
    model.eval()
    logits, ys = [], []
    for b in batches:
        with _autocast(b.y.device, amp):
            logits.append(model(*b.inputs).float())
        ys.append(b.y)
    all_logits, y = torch.cat(logits), torch.cat(ys)
    return task.loss(all_logits, y).item(), task.score(all_logits, y)


def optimiser_step(
    loss: torch.Tensor,
    opt: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None,
    sched: torch.optim.lr_scheduler.LRScheduler | None,
) -> None:
    """One optimiser step on `loss` (scaled when mixed precision needs a `scaler`), then the
    learning-rate schedule's step; shared by `fit_batches` and `ensemble.fit_fixed_batched`."""
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        opt.step()
    if sched is not None:
        sched.step()


def _train_epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler | None,
    scaler: torch.amp.GradScaler | None,
    batches: Iterator[Batch],
    n_samples: int,
    amp: torch.dtype | None,
    task: Task,
) -> tuple[float, float]:
    """One pass over `batches`; returns (mean loss, mean training score) in train mode."""
    model.train()
    total_loss: torch.Tensor | None = None
    correct: torch.Tensor | None = None
    for b in batches:
        if total_loss is None or correct is None:
            total_loss = torch.zeros((), device=b.y.device)
            correct = torch.zeros((), device=b.y.device)
        with _autocast(b.y.device, amp):
            logits = model(*b.inputs)
        loss = task.loss(logits.float(), b.y)
        optimiser_step(loss, opt, scaler, sched)
        total_loss += loss.detach() * len(b.y)
        correct += task.item_scores(logits, b.y).sum()
    if total_loss is None or correct is None:
        raise ValueError("fit needs a non-empty train split")
    return total_loss.item() / n_samples, correct.item() / n_samples


def _autocast(device: torch.device, amp: torch.dtype | None) -> Any:
    """Autocast to `amp` on `device`, or a no-op context when amp is None."""
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp)


def _live(live_dir: Path | None) -> Any:
    """A DVCLive logger writing to `live_dir` (never to the project's dvc.yaml), or None."""
    if live_dir is None:
        return None
    from dvclive import Live  # imported lazily: it pulls in DVC

    return Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None)
