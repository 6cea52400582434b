"""Train POYO on one or many sessions, and adapt it to a new session as its authors do.

Inputs are plain arrays, so either data set can feed them: per session, its spikes
(`SpikeTable`), windows [starts, stops) and a target per window, a class (P,) for the
`class` readout or an output per bin (P, Q, D) for `bins`. Loss: cross-entropy for
`class`, mean squared error for `bins`.

Memory is bounded by a batch: every batch holds windows of one session, tokenized when
it is needed; `sessions` may be any sequence (a lazy one that reads a session's arrays
from disk, memory-mapped, when indexed), and only one session is held at a time.

Adapting (torch_brain's examples/poyo_plus/finetune.py, `GradualUnfreezing`): the new
session's units and the session itself get new embedding rows, which are trained with
every other weight frozen; then, optionally, everything trains.

Device and precision are explicit (`POYOFit.device`, `POYOFit.amp`): the model moves to
the device before it trains, each batch is tokenized on the CPU and moved to it, and the
forward passes run under autocast when `amp` asks for it, on the CPU as on CUDA (so the
mixed-precision path runs in the default tests); the loss is taken in float32.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from npdecode.decode.training import optimiser_step
from npdecode.errors import TrainingError
from npdecode.models.poyo import POYODecoder, POYOParams, Readout, TokenBatch
from npdecode.models.poyo_tokens import SpikeTable, check_windows, tokenize

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionWindows:
    """One session's inputs: its id, spikes, windows [starts, stops) in s (P,) and targets y:
    (P,) int64 classes (`class`) or (P, Q, D) float32 outputs per bin (`bins`); unit_ids
    name the spikes' local unit indices 0..U-1 (unit ids repeat across sessions)."""

    session: str
    spikes: SpikeTable
    starts: np.ndarray
    stops: np.ndarray
    y: np.ndarray
    unit_ids: tuple[str, ...]

    @classmethod
    def of(
        cls,
        session: str,
        spike_times: Sequence[np.ndarray],
        starts: np.ndarray,
        stops: np.ndarray,
        y: np.ndarray,
        unit_ids: Sequence[object] | None = None,
    ) -> SessionWindows:
        """Checked inputs of session `session` from per-unit spike times (s)."""
        where = f"session {session}"
        check_windows(starts, stops, where)
        if len(y) != len(starts):
            raise ValueError(f"{where}: {len(y)} targets for {len(starts)} windows")
        ids = tuple(str(u) for u in (range(len(spike_times)) if unit_ids is None else unit_ids))
        if len(ids) != len(spike_times) or len(set(ids)) != len(ids):
            raise ValueError(
                f"{where}: unit_ids must name each of the {len(spike_times)} units once"
            )
        return cls(str(session), SpikeTable.from_trains(spike_times), starts, stops, y, ids)


@dataclass(frozen=True)
class POYOFit:
    """How POYO trains (beside the loop, apart from the architecture): AdamW at `lr` for a fixed
    number of `epochs`; embeddings take no weight decay (rows of units absent from a
    batch should not shrink; the authors use a sparse LAMB for the same reason)."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    device: str = "cpu"  # cpu | cuda | cuda:N: where the model trains
    amp: Literal["bf16", "fp16", "off"] = "off"  # autocast of the forward passes (fp16: scaled)


def build_poyo(
    p: POYOParams,
    sessions: Sequence[SessionWindows],
    readout: Readout,
    n_classes: int | None = None,
    seed: int = 0,
) -> POYODecoder:
    """A seeded POYO over `sessions`' units, its window the longest window it will see.

    `class` needs `n_classes`; `bins` reads (Q, D) from the targets (P, Q, D).
    """
    units, window, shapes = {}, 0.0, set()
    for d in _each(sessions):
        units[d.session] = d.unit_ids
        window = max(window, float(np.max(d.stops - d.starts)))
        shapes.add(d.y.shape[1:])
    if len(shapes) != 1:
        raise ValueError(f"sessions' targets must share one shape per window, got {sorted(shapes)}")
    shape = shapes.pop()
    if readout == "class":
        if n_classes is None:
            raise ValueError("a class readout needs n_classes")
        n_out, n_queries = n_classes, 1
    elif len(shape) != 2:
        raise ValueError(f"a bins readout needs targets (P, Q, D), got (P, *{shape})")
    else:
        n_queries, n_out = shape
    torch.manual_seed(seed)
    # to the microsecond: 0.25000000000000006 s would add a third 0.125 s step of latents
    return POYODecoder(p, units, round(window, 6), n_out, n_queries, readout)


def loss_of(model: POYODecoder, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of logits (B, C) and classes (B,), or MSE of outputs and targets (B, Q, D)."""
    if model.readout == "class":
        return nn.functional.cross_entropy(out, y)
    return nn.functional.mse_loss(out, y)


def session_batch(
    model: POYODecoder, d: SessionWindows, idx: np.ndarray, device: torch.device
) -> tuple[TokenBatch, torch.Tensor]:
    """Windows `idx` of session `d`, tokenized, with their targets, on `device`."""
    tokens = tokenize(d.spikes, d.starts[idx], d.stops[idx])
    y = np.asarray(d.y[idx], np.int64 if model.readout == "class" else np.float32)
    return TokenBatch.of(tokens, model.n_queries, device), torch.from_numpy(y).to(device)


def fit_poyo(
    model: POYODecoder,
    sessions: Sequence[SessionWindows],
    fit: POYOFit,
    params: Sequence[nn.Parameter] | None = None,
    after_epoch: Callable[[int, float], bool] | None = None,
) -> list[float]:
    """Train `params` (default: every parameter) of `model` on `sessions` in place, on
    `fit.device` (the model moves there) under `fit.amp`.

    Each epoch cuts every session's windows into shuffled batches and runs all sessions'
    batches in one seeded order. `after_epoch(epoch, loss)` (1-based), when given, runs
    after each epoch (e.g. a validation score) and stops training by returning True; the
    model is back in training mode after it. Returns the mean training loss of each epoch.
    """
    device = torch.device(fit.device)
    model.to(device)
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(fit.amp)
    scaler = torch.amp.GradScaler(device.type) if amp is torch.float16 else None
    torch.manual_seed(fit.seed)  # dropout
    gen = torch.Generator().manual_seed(fit.seed)  # batch order
    trained = list(model.parameters()) if params is None else list(params)
    emb = {id(p) for p in model.embedding_parameters()}
    groups: list[dict[str, Any]] = [
        {"params": [p for p in trained if id(p) not in emb]},
        {"params": [p for p in trained if id(p) in emb], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(
        [g for g in groups if g["params"]], lr=fit.lr, weight_decay=fit.weight_decay
    )
    sizes = [len(d.starts) for d in _each(sessions)]
    model.train()
    losses = []
    for epoch in range(fit.epochs):
        total, n = 0.0, 0
        for d, idx in _batches(sessions, sizes, fit.batch_size, gen):
            batch, y = session_batch(model, d, idx, device)
            with _autocast(device, amp):
                out = model(batch, d.session)
            loss = loss_of(model, out.float(), y)
            if not torch.isfinite(loss):
                raise TrainingError(
                    f"POYO's loss became {loss.item()} in epoch {epoch + 1} on session "
                    f"{d.session}: lower the learning rate (now {fit.lr})"
                )
            optimiser_step(loss, opt, scaler, None)  # fp16: the scaler keeps gradients alive
            total, n = total + loss.item() * len(idx), n + len(idx)
        losses.append(total / max(n, 1))
        log.info("POYO epoch %d: loss %.4f", epoch + 1, losses[-1])
        if after_epoch is not None:
            stop = after_epoch(epoch + 1, losses[-1])
            model.train()
            if stop:
                break
    return losses


def fit_best_epoch(
    model: POYODecoder,
    sessions: Sequence[SessionWindows],
    fit: POYOFit,
    score: Callable[[], float],
    patience: int,
) -> tuple[list[float], dict[str, Any]]:
    """`fit_poyo` with early stopping: `score()` (a validation score, higher is better)
    after every epoch, the best epoch's weights kept (a tie keeps the earlier epoch),
    training stopped after `patience` epochs without a better one; the model ends with the
    best weights. Returns (each epoch's training loss, {"score", "epoch", "curve"})."""
    best: dict[str, Any] = {"score": -np.inf, "epoch": 0, "state": None, "curve": []}

    def after_epoch(epoch: int, loss: float) -> bool:
        value = score()
        best["curve"].append(value)
        if value > best["score"]:
            state = {k: v.detach().clone() for k, v in model.tensors().items()}
            best.update(score=value, epoch=epoch, state=state)
        return epoch - best["epoch"] >= patience

    losses = fit_poyo(model, sessions, fit, after_epoch=after_epoch)
    model.load_tensors(best.pop("state"))
    return losses, best


def train_poyo(
    p: POYOParams,
    sessions: Sequence[SessionWindows],
    fit: POYOFit,
    readout: Readout,
    n_classes: int | None = None,
) -> tuple[POYODecoder, list[float]]:
    """POYO trained on one session or many (shared weights; unit and session embeddings
    per session): (model in eval mode, the loss of each epoch)."""
    model = build_poyo(p, sessions, readout, n_classes, fit.seed)
    losses = fit_poyo(model, sessions, fit)
    return model.eval(), losses


def adapt_poyo(
    donor: POYODecoder, session: SessionWindows, fit: POYOFit, full_epochs: int = 0
) -> tuple[POYODecoder, list[float]]:
    """A copy of `donor` adapted to a new `session`, the authors' way.

    The copy keeps only `session`'s unit and session embeddings (new rows, seeded by
    `fit.seed`; rows the donor already has are kept); `fit.epochs` epochs train those
    alone, every other weight frozen and bitwise unchanged; then `full_epochs` epochs
    train everything (0: unit identification only). Returns (model in eval mode, losses).
    """
    model = copy.deepcopy(donor)
    torch.manual_seed(fit.seed)
    model.set_units({session.session: session.unit_ids})
    emb = model.embedding_parameters()
    frozen = [p for p in model.parameters() if all(p is not e for e in emb)]
    for p in frozen:
        p.requires_grad_(False)
    losses = fit_poyo(model, [session], fit, emb)
    for p in frozen:
        p.requires_grad_(True)
    if full_epochs:
        losses += fit_poyo(model, [session], dataclasses.replace(fit, epochs=full_epochs))
    return model.eval(), losses


@torch.no_grad()
def predict_poyo(model: POYODecoder, d: SessionWindows, batch_size: int = 64) -> np.ndarray:
    """The model's outputs for every window of `d`, float32: logits (P, C) or (P, Q, D)."""
    model.eval()
    device = next(model.parameters()).device
    out = [
        model(
            session_batch(model, d, np.arange(i, min(i + batch_size, len(d.starts))), device)[0],
            d.session,
        )
        for i in range(0, len(d.starts), batch_size)
    ]
    if not out:  # no windows
        tail = (model.n_out,) if model.readout == "class" else (model.n_queries, model.n_out)
        return np.zeros((0, *tail), np.float32)
    return torch.cat(out).cpu().numpy()


def _autocast(device: torch.device, amp: torch.dtype | None) -> Any:
    """Autocast to `amp` on `device`, or a no-op context when amp is None."""
    return contextlib.nullcontext() if amp is None else torch.autocast(device.type, dtype=amp)


def _each(sessions: Sequence[SessionWindows]) -> Iterator[SessionWindows]:
    """Sessions one at a time (a lazy sequence loads each when indexed)."""
    for s in range(len(sessions)):
        yield sessions[s]


def _batches(
    sessions: Sequence[SessionWindows], sizes: list[int], batch_size: int, gen: torch.Generator
) -> Iterator[tuple[SessionWindows, np.ndarray]]:
    """One epoch's (session, window indices) batches in a seeded order, holding one session."""
    chunks = []
    for s, n in enumerate(sizes):
        perm = torch.randperm(n, generator=gen).numpy()
        chunks += [(s, perm[i : i + batch_size]) for i in range(0, n, batch_size)]
    held: tuple[int, SessionWindows] | None = None
    for j in torch.randperm(len(chunks), generator=gen).tolist():
        s, idx = chunks[j]
        if held is None or held[0] != s:
            held = (s, sessions[s])  # the previous session is released
        yield held[1], idx
