"""Train several independent models of one architecture as one batch (few-shot draws).

The draws of one k in a few-shot curve are independent learners of the same shape trained
on equally many presentations for the same fixed budget (the strict protocol). Stacking
their parameters (`torch.func.stack_module_state`) and mapping one functional forward
over the stack (`torch.func.vmap`) runs every step of all of them as one set of larger
kernels: on a GPU, where a 64-presentation step of these models is launch-bound, the cost
of a curve then grows far slower than the number of draws. On a CPU these models are
compute-bound at batch 64 and the loop-written LSTM (nn.LSTM has no vmap rule) costs more
than the fused one, so batching does not pay there (`bench/bench_fewshot.py` measures it)
and `fewshot.batch_draws: auto` keeps CPU draws one by one.

Each member keeps its own initialisation (built beforehand with its draw's seed) and its
own batch order (a generator seeded with its seed); AdamW and the learning-rate schedule
act elementwise, so a stacked optimiser is each member's own. Dropout masks come from one
seeded stream for the whole batch (vmap's `randomness="different"`), so a member's result
depends on the batch it was trained in; with dropout off, a batched member equals the same
model trained alone up to float rounding (tests/test_ensemble.py).
"""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from npdecode.decode.training import (
    FitOptions,
    autocast_dtype,
    grad_scaler,
    optimiser_step,
    resolve_device,
    seed_everything,
)
from npdecode.models.lstm import LoopLSTM


def vmappable(model: nn.Module) -> nn.Module:
    """A copy of `model` in which every nn.LSTM is a `LoopLSTM` (same parameter names)."""
    out = copy.deepcopy(model)
    for parent in out.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.LSTM):
                setattr(parent, name, LoopLSTM(child))
    return out


def fit_fixed_batched(
    models: list[nn.Module],
    trains: list[tuple[np.ndarray, np.ndarray]],
    opts: list[FitOptions],
) -> list[dict[str, Any]]:
    """Train `models[i]` on `trains[i]` with `opts[i]` (seeds may differ; everything else
    must not) for exactly `max_epochs` epochs, all as one batch; like
    `npdecode.decode.training.fit_fixed` for each, the trained weights are written back into the
    models (in eval mode). Every member needs the same number of training presentations.

    Returns one dict of facts per member (epochs, final training loss and accuracy).
    """
    if not models or len({len(t[1]) for t in trains}) != 1:
        raise ValueError("batched members need equally many training presentations")
    o = opts[0]
    if any({**vars(x), "seed": 0} != {**vars(o), "seed": 0} for x in opts):
        raise ValueError("batched members may differ in their seed only")
    device = resolve_device(o.device)
    amp = autocast_dtype(o.amp, device, o.cpu_autocast)
    seed_everything(o.seed)  # the dropout stream of the whole batch
    gens = [torch.Generator().manual_seed(x.seed) for x in opts]  # each member's batch order
    base = vmappable(models[0]).to("meta")
    params, buffers = stack_module_state([m.to(device) for m in models])
    x = torch.stack([torch.as_tensor(t[0]) for t in trains]).to(device)  # (M, P, T, U)
    y = torch.stack([torch.as_tensor(t[1]) for t in trains]).to(device)  # (M, P)
    trainable = [p for p in params.values() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=o.lr, weight_decay=o.weight_decay)
    n_members, n_train = y.shape
    steps = o.max_epochs * -(-n_train // o.batch_size)
    sched = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        if o.schedule == "cosine"
        else None
    )
    scaler = grad_scaler(amp, device)

    def one(p: dict, b: dict, xb: torch.Tensor) -> torch.Tensor:
        return functional_call(base, (p, b), (xb,))

    forward = vmap(one, randomness="different")
    members = torch.arange(n_members, device=device)[:, None]
    task = o.task
    loss_sum = correct = torch.zeros(n_members, device=device)
    base.train()
    for epoch in range(1, o.max_epochs + 1):
        order = torch.stack([torch.randperm(n_train, generator=g) for g in gens]).to(device)
        loss_sum = torch.zeros(n_members, device=device)
        correct = torch.zeros(n_members, device=device)
        for i in range(0, n_train, o.batch_size):
            idx = order[:, i : i + o.batch_size]  # (M, b): each member's own batch
            with _autocast(device, amp):
                logits = forward(params, buffers, x[members, idx])  # (M, b, C)
            per = task.item_losses(
                logits.float().flatten(0, 1), y[members, idx].flatten(0, 1)
            ).view(n_members, -1)  # (M, b)
            loss = per.mean(dim=1).sum()  # each member's mean loss: its own gradient
            optimiser_step(loss, opt, scaler, sched)
            loss_sum += per.detach().sum(dim=1)
            correct += task.item_scores(logits, y[members, idx]).sum(dim=1)
        if not torch.isfinite(loss_sum).all():
            raise FloatingPointError(
                f"training loss is not finite at epoch {epoch}: lower the learning rate, or "
                "set train.amp to off if this happens only on CUDA"
            )
    for i, model in enumerate(models):
        state = {k: v[i].detach() for k, v in {**params, **buffers}.items()}
        model.load_state_dict(state)
        model.eval()
    return [
        {
            "epochs": o.max_epochs,
            "train_loss": float(loss_sum[i]) / n_train,
            f"train_{task.train_score_name}": float(correct[i]) / n_train,
            "batched_members": n_members,
        }
        for i in range(n_members)
    ]


def _autocast(device: torch.device, amp: torch.dtype | None) -> Any:
    """Autocast to `amp` on `device`, or a no-op context when amp is None."""
    return contextlib.nullcontext() if amp is None else torch.autocast(device.type, dtype=amp)
