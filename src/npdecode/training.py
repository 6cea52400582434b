"""The training loop shared by the deep decoders (lstm, transformer, stgat).

AdamW on cross-entropy; after every epoch the model is scored on the validation split and
the weights with the best validation accuracy are kept (ties go to the lower validation
loss); training stops after `patience` epochs without improvement. The test split is never
seen here. Batch order comes from a seeded `torch.Generator`, dropout from the seeded global
stream, so the same options give the same model on the CPU. On CUDA, forward passes run
under autocast (bf16, or fp16 with a GradScaler); on the CPU always in float32.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from npdecode.errors import ParamsError

log = logging.getLogger(__name__)
DEVICE_RE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass(frozen=True)
class FitOptions:
    """How to train: optimiser, stopping rule, batching, device, precision, seed."""

    lr: float = 1e-3
    weight_decay: float = 1e-2
    max_epochs: int = 200
    patience: int = 12  # epochs without a better val accuracy before stopping
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: Literal["bf16", "fp16", "off"] = "bf16"  # used on CUDA only
    schedule: Literal["constant", "cosine"] = "constant"  # cosine: lr -> 0 at max_epochs


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


def autocast_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `amp` on `device`; None (float32) off CUDA or when amp is off."""
    if device.type != "cuda" or amp == "off":
        return None
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
    device = resolve_device(opts.device)
    amp = autocast_dtype(opts.amp, device)
    seed_everything(opts.seed)
    order_gen = torch.Generator().manual_seed(opts.seed)
    model.to(device)
    x_tr, y_tr = torch.as_tensor(train[0]).to(device), torch.as_tensor(train[1]).to(device)
    y_val = torch.as_tensor(val[1]).to(device)
    if len(y_tr) == 0 or len(y_val) == 0:
        raise ValueError("fit needs a non-empty train and val split")
    opt, sched, scaler = _optimiser(model, opts, len(y_tr), amp)
    live = _live(live_dir)
    best = {"accuracy": -1.0, "loss": float("inf"), "epoch": 0}
    best_state: dict[str, torch.Tensor] = {}
    bar = tqdm(range(1, opts.max_epochs + 1), desc="epochs", disable=None, leave=False)
    epoch = 0
    for epoch in bar:
        loss, acc = _train_epoch(
            model, opt, sched, scaler, x_tr, y_tr, opts.batch_size, order_gen, amp
        )
        logits = predict_logits(model, val[0], opts.batch_size, amp)
        val_loss = F.cross_entropy(logits, y_val).item()
        val_acc = (logits.argmax(1) == y_val).sum().item() / len(y_val)
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"training loss is {loss} at epoch {epoch}: lower the learning rate, or set "
                "train.amp to off if this happens only on CUDA"
            )
        if live is not None:
            for name, value in (
                ("train/loss", loss),
                ("train/accuracy", acc),
                ("train/lr", opt.param_groups[0]["lr"]),  # at the end of the epoch
                ("val/loss", val_loss),
                ("val/accuracy", val_acc),
            ):
                live.log_metric(name, value)
            live.next_step()
        bar.set_postfix(loss=f"{loss:.3f}", train=f"{acc:.3f}", val=f"{val_acc:.3f}")
        # progress for logs without a TTY (SLURM, dvc repro): every 10th epoch at INFO
        log.log(
            logging.INFO if epoch == 1 or epoch % 10 == 0 else logging.DEBUG,
            "epoch %d: train loss %.3f, train acc %.3f, val acc %.3f",
            epoch,
            loss,
            acc,
            val_acc,
        )
        if val_acc > best["accuracy"] or (val_acc == best["accuracy"] and val_loss < best["loss"]):
            best = {"accuracy": val_acc, "loss": val_loss, "epoch": epoch}
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        elif epoch - best["epoch"] >= opts.patience:
            break
    bar.close()
    model.load_state_dict(best_state)
    info = {
        "epochs": epoch,
        "best_epoch": best["epoch"],
        "best_val_accuracy": best["accuracy"],
        "device": str(device),
        "amp": str(amp).removeprefix("torch.") if amp is not None else "off",
        "n_parameters": sum(p.numel() for p in model.parameters()),
    }
    if live is not None:
        live.summary.update({k: v for k, v in info.items() if k not in ("device", "amp")})
        live.end()
    log.info(
        "stopped after %d epochs; best val accuracy %.3f at epoch %d",
        epoch,
        best["accuracy"],
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

    `on_epoch(epoch, model)` is called after every epoch (e.g. to choose a budget on other
    sessions, `bench/fewshot_budget.py`); the model is back in train mode after it.

    Returns the model, on the training device and in eval mode, and a dict of facts
    (epochs, final training loss and accuracy, device, precision).
    """
    device = resolve_device(opts.device)
    amp = autocast_dtype(opts.amp, device)
    seed_everything(opts.seed)
    order_gen = torch.Generator().manual_seed(opts.seed)
    model.to(device)
    x_tr, y_tr = torch.as_tensor(train[0]).to(device), torch.as_tensor(train[1]).to(device)
    if len(y_tr) == 0:
        raise ValueError("fit_fixed needs a non-empty training set")
    opt, sched, scaler = _optimiser(model, opts, len(y_tr), amp)
    loss = acc = float("nan")
    for epoch in range(1, opts.max_epochs + 1):
        loss, acc = _train_epoch(
            model, opt, sched, scaler, x_tr, y_tr, opts.batch_size, order_gen, amp
        )
        if not math.isfinite(loss):
            raise FloatingPointError(
                f"training loss is {loss} at epoch {epoch}: lower the learning rate, or set "
                "train.amp to off if this happens only on CUDA"
            )
        if on_epoch is not None:
            on_epoch(epoch, model)
    info = {
        "epochs": opts.max_epochs,
        "train_loss": loss,
        "train_accuracy": acc,
        "device": str(device),
        "amp": str(amp).removeprefix("torch.") if amp is not None else "off",
    }
    return model.eval(), info


def _optimiser(
    model: nn.Module, opts: FitOptions, n_train: int, amp: torch.dtype | None
) -> tuple[
    torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None, torch.amp.GradScaler | None
]:
    """AdamW (frozen parameters get no gradient, so it leaves them alone), its schedule
    (stepped per batch) and, for fp16, a gradient scaler."""
    opt = torch.optim.AdamW(model.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
    steps = opts.max_epochs * -(-n_train // opts.batch_size)
    sched = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        if opts.schedule == "cosine"
        else None
    )
    scaler = torch.amp.GradScaler("cuda") if amp is torch.float16 else None
    return opt, sched, scaler


def _train_epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler | None,
    scaler: torch.amp.GradScaler | None,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    gen: torch.Generator,
    amp: torch.dtype | None,
) -> tuple[float, float]:
    """One pass over (x, y) in seeded random order; returns (mean loss, accuracy) in train mode."""
    model.train()
    order = torch.randperm(len(y), generator=gen).to(x.device)
    total_loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    for i in range(0, len(y), batch_size):
        idx = order[i : i + batch_size]
        with _autocast(x.device, amp):
            logits = model(x[idx])
        loss = F.cross_entropy(logits.float(), y[idx])
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
        total_loss += loss.detach() * len(idx)
        correct += (logits.argmax(1) == y[idx]).sum()
    return total_loss.item() / len(y), correct.item() / len(y)


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
