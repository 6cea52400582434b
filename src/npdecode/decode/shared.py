"""One decoder shared across sessions and mice: batches, training, scoring, new read-ins.

Sessions are grouped all together (`multisession.group: all`, the default: in the Allen
data every mouse has one session) or by specimen (`mouse`, for data sets where mice
repeat). A `MultiSessionDecoder` (per-session read-ins, shared core) is trained on the
training splits of a group's sessions with early stopping on their pooled validation
splits. Its memory is bounded by a batch and the model, not by the number of sessions:
sessions are loaded lazily (`load_session(..., lazy=True)`), and each batch is read from
one session's file, at that session's width, normalised on the fly (`SessionBatches`).

A new read-in on a frozen core (`fit_readins`) serves transfer to a new mouse
(`npdecode.decode.transfer`) and adapting a checkpoint (`npdecode.decode.adapt`).
A trained core keeps the mean latent of each image in each bin over its sessions
(`latent_templates`); a new read-in starts as the ridge map of its shots onto them.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from npdecode.decode.fewshot import (
    batch_draws,
    fit_shot_learners,
    normalised,
    protocol_detail,
)
from npdecode.decode.session import task_of
from npdecode.decode.task import Task
from npdecode.decode.training import (
    Batch,
    FitOptions,
    fit_batches,
    fit_options,
    predict_logits,
    seed_everything,
)
from npdecode.errors import DataError
from npdecode.formats.split import SessionData, Split
from npdecode.models.multisession import MultiSessionDecoder
from npdecode.params import FewshotParams, MultisessionParams, Params, SessionId, TrainParams

log = logging.getLogger(__name__)


# --- groups -----------------------------------------------------------------------


def mouse_of(data: SessionData) -> str:
    """The mouse a session comes from (its own name when the file names no specimen)."""
    return f"mouse_{data.specimen_id}" if data.specimen_id else f"session_{data.session_id}"


def group_sessions(data: dict[SessionId, SessionData], by: str) -> dict[str, list[SessionId]]:
    """Groups of session ids: one named `all`, or one per specimen (mouse)."""
    if by == "all":
        return {"all": sorted(data)}
    groups: dict[str, list[SessionId]] = {}
    for sid, d in sorted(data.items()):
        groups.setdefault(mouse_of(d), []).append(sid)
    return groups


def check_compatible(data: dict[SessionId, SessionData], sids: list[SessionId]) -> None:
    """Sessions of one shared decoder must decode the same images with the same bins."""
    first = data[sids[0]]
    for sid in sids[1:]:
        if not np.array_equal(data[sid].frames, first.frames) or data[sid].n_bins != first.n_bins:
            raise DataError(
                f"sessions {sids[0]} and {sid} differ in their images (frames) or bins: "
                "a shared decoder needs the same classes and bins in every session"
            )


# --- batches ----------------------------------------------------------------------------


class SessionBatches:
    """Batches for a shared decoder (a `training.BatchSource`): each holds one session's
    presentations at that session's width, read from its split file and normalised with
    its training statistics when the batch is needed.

    An epoch shuffles each session's presentations into batches, then interleaves all
    sessions' batches in one seeded order; validation is every session's val split in
    file order. Peak memory: a batch or two (the next one is read ahead on CUDA), whatever
    the number of sessions.
    """

    def __init__(
        self,
        sessions: list[SessionData],
        train: str = "train",
        val: str = "val",
        prefetch: bool = False,
    ) -> None:
        self.sessions, self.train, self.val = sessions, train, val
        self.prefetch = prefetch  # read ahead in a thread off CUDA too (always on CUDA)

    def n_train(self) -> int:
        return sum(len(getattr(d, self.train)) for d in self.sessions)

    def n_val(self) -> int:
        return sum(len(getattr(d, self.val)) for d in self.sessions)

    def n_steps(self, batch_size: int) -> int:
        return sum(-(-len(getattr(d, self.train)) // batch_size) for d in self.sessions)

    def plan(self, batch_size: int, gen: torch.Generator) -> list[tuple[int, np.ndarray]]:
        """One epoch's batches, (session index, presentation indices), in training order."""
        chunks: list[tuple[int, np.ndarray]] = []
        for s, d in enumerate(self.sessions):
            perm = torch.randperm(len(getattr(d, self.train)), generator=gen).numpy()
            chunks += [(s, perm[i : i + batch_size]) for i in range(0, len(perm), batch_size)]
        order = torch.randperm(len(chunks), generator=gen).tolist()
        return [chunks[j] for j in order]

    def train_batches(
        self, batch_size: int, gen: torch.Generator, device: torch.device
    ) -> Iterator[Batch]:
        jobs = [(s, self.train, idx) for s, idx in self.plan(batch_size, gen)]
        return self._load(jobs, device)

    def val_batches(self, batch_size: int, device: torch.device) -> Iterator[Batch]:
        jobs = []
        for s, d in enumerate(self.sessions):
            n = len(getattr(d, self.val))
            jobs += [
                (s, self.val, np.arange(i, min(i + batch_size, n))) for i in range(0, n, batch_size)
            ]
        return self._load(jobs, device)

    def batch(self, s: int, split: str, idx: np.ndarray) -> Batch:
        """Presentations `idx` of session index `s`'s `split`, on the CPU: ((x, s), y)."""
        d = self.sessions[s]
        part: Split = getattr(d, split)
        x = torch.from_numpy(d.normalise(part.rows(idx)))  # (B, T, U_s)
        return Batch((x, s), torch.from_numpy(part.y[idx]))

    def _load(
        self, jobs: list[tuple[int, str, np.ndarray]], device: torch.device
    ) -> Iterator[Batch]:
        """The batches of `jobs` on `device`. On CUDA the next batch is read and normalised
        in a thread while the device works on this one (the order never changes)."""
        if device.type != "cuda" and not self.prefetch:
            for job in jobs:
                yield _to(self.batch(*job), device)
            return
        with ThreadPoolExecutor(1) as pool:
            pending: Future[Batch] | None = None
            for job in jobs:
                ahead = pool.submit(self.batch, *job)
                if pending is not None:
                    yield _to(pending.result(), device)
                pending = ahead
            if pending is not None:
                yield _to(pending.result(), device)


def _to(b: Batch, device: torch.device) -> Batch:
    x, s = b.inputs
    return Batch((x.to(device), s), b.y.to(device))


# --- the shared decoder -----------------------------------------------------------------


def build_shared(
    data: dict[SessionId, SessionData], sids: list[SessionId], params: Params, seed: int
) -> MultiSessionDecoder:
    """Seed, then build the shared decoder of sessions `sids` from params `multisession`
    and the core's architecture `train.<multisession.core>`."""
    check_compatible(data, sids)
    p = params.multisession
    seed_everything(seed)
    return MultiSessionDecoder(
        p,
        getattr(params.train, p.core).arch,  # train.lstm or train.transformer
        session_ids=tuple(sids),
        n_units=tuple(data[s].n_units for s in sids),
        n_bins=data[sids[0]].n_bins,
        n_classes=data[sids[0]].n_classes,
    )


def train_shared(
    data: dict[SessionId, SessionData],
    sids: list[SessionId],
    params: Params,
    live_dir: Path | None = None,
) -> tuple[MultiSessionDecoder, dict[str, Any]]:
    """Train one shared decoder on the sessions `sids` (early stopping on pooled val)."""
    model = build_shared(data, sids, params, params.train.seed)
    opts = fit_options(
        params.train, params.multisession.fit, "multisession", task_of(data[sids[0]])
    )
    source = SessionBatches([data[s] for s in sids])
    log.info(
        "shared decoder on %d sessions: %d training presentations, %d parameters",
        len(sids),
        source.n_train(),
        sum(p.numel() for p in model.parameters()),
    )
    _, info = fit_batches(model, source, opts, live_dir)
    model.templates.copy_(latent_templates(model, source, opts.batch_size))
    return model, info  # fit_batches trains `model` in place


@torch.no_grad()
def latent_templates(
    model: MultiSessionDecoder, source: SessionBatches, batch_size: int
) -> torch.Tensor:
    """(C, T, D) the mean read-in output of each class in each bin over the training
    presentations of each session, averaged over sessions (eval mode).

    Every session's read-in maps into the one latent space the core reads, so these are
    the core's view of each image; a new session's read-in starts as the ridge map of its
    shots onto them (`multisession.readin_init: template`).
    """
    model.eval()
    total = torch.zeros_like(model.templates)  # (C, T, D)
    n_sessions = torch.zeros(model.n_classes, device=total.device)
    for s, d in enumerate(source.sessions):
        sums, counts = torch.zeros_like(total), torch.zeros_like(n_sessions)
        n = len(getattr(d, source.train))
        for i in range(0, n, batch_size):
            b = _to(
                source.batch(s, source.train, np.arange(i, min(i + batch_size, n))), total.device
            )
            sums.index_add_(0, b.y, model.latent(b.inputs[0], s))  # (B, T, D) summed by class
            counts += torch.bincount(b.y, minlength=model.n_classes)
        seen = counts > 0
        total[seen] += sums[seen] / counts[seen, None, None]
        n_sessions += seen
    return total / n_sessions.clamp(min=1)[:, None, None]


def session_logits(
    model: MultiSessionDecoder, data: SessionData, split: str, batch_size: int
) -> np.ndarray:
    """(P, C) logits of the shared model for one of its sessions' splits, read in batches."""
    source = SessionBatches([data], val=split)
    device = next(model.parameters()).device
    index = model.index(data.session_id)
    out = [
        predict_logits(BoundSession(model, index), b.inputs[0], batch_size)
        for b in source.val_batches(batch_size, device)
    ]
    return torch.cat(out).cpu().numpy() if out else np.zeros((0, model.n_classes), np.float32)


class BoundSession(torch.nn.Module):
    """A shared decoder with its session fixed: x (B, T, U_s) -> logits (B, C)."""

    def __init__(self, model: MultiSessionDecoder, index: int) -> None:
        super().__init__()
        self.model, self.index = model, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, self.index)


# --- a new read-in on a frozen core (transfer, adapt) -----------------------------------


def readin_model(
    donor: MultiSessionDecoder, session_id: SessionId, n_units: int, seed: int
) -> MultiSessionDecoder:
    """A one-session decoder for `session_id`: a fresh read-in (seeded by `seed`) and the
    donor's core, frozen."""
    seed_everything(seed)
    model = MultiSessionDecoder(
        donor.p,
        donor.core_p,
        session_ids=(session_id,),
        n_units=(n_units,),
        n_bins=donor.n_bins,
        n_classes=donor.n_classes,
    )
    model.core.load_state_dict(donor.core_state())
    model.templates.copy_(donor.templates)
    model.freeze_core()
    return model


def readin_options(
    p: MultisessionParams, train: TrainParams, fs: FewshotParams, task: Task | None = None
) -> FitOptions:
    """The budget of a new read-in under `fewshot.protocol`: strict, a fixed
    `multisession.adapt_epochs` epochs at `adapt_lr` with no validation data; transductive
    (the old behaviour, as a named option), early stopping on the session's validation
    split within `fewshot.max_epochs` and `fewshot.patience`, at `adapt_lr`."""
    base = dataclasses.replace(
        fit_options(train, p.fit, task=task), lr=p.adapt_lr, schedule="constant"
    )
    if fs.protocol == "strict":
        return dataclasses.replace(base, max_epochs=p.adapt_epochs, patience=max(1, p.adapt_epochs))
    return dataclasses.replace(
        base,
        max_epochs=min(p.fit.max_epochs, fs.max_epochs),
        patience=min(p.fit.patience, fs.patience),
    )


def fit_readins(
    donor: MultiSessionDecoder, views: list[SessionData], seeds: list[int], params: Params
) -> list[MultiSessionDecoder]:
    """Fit one new read-in per few-shot draw under the donor's frozen core: transfer's
    "fit one learner on these shots", under the few-shot protocol of `npdecode.decode.fewshot`.

    Each `views[i]` is what draw i may see (`npdecode.decode.fewshot.shot_view`: under strict, its
    shots and their own normalisation, no validation data). With `readin_init: template`
    the read-in starts as the ridge map (`readin_ridge`) of the shots' normalised counts
    onto the donor's mean latent of their images (`latent_templates`); then
    `fit_shot_learners` trains it, the core frozen, with `readin_options`'s budget (strict:
    `adapt_epochs` at `adapt_lr`, chosen on sessions other than those reported).

    Returns the adapted one-session models (eval mode), each normalising counts with its
    view's (mean, std).
    """
    p = params.multisession
    models = [
        readin_model(donor, v.session_id, v.n_units, seed)
        for v, seed in zip(views, seeds, strict=True)
    ]
    if p.readin_init in ("template", "encoding"):
        templates = donor.templates.cpu().numpy()
        for model, view in zip(models, views, strict=True):
            x, y = normalised(view, "train")
            if p.readin_init == "template":
                weight, bias = ridge_map(x, templates[y], p.readin_ridge)
            else:
                weight, bias = encoding_map(x, y, templates, p.readin_rank, p.readin_ridge)
            with torch.no_grad():
                model.readin(0).weight.copy_(torch.from_numpy(weight.T))
                model.readin(0).bias.copy_(torch.from_numpy(bias))
    if p.adapt_head:  # the classifier learns this mouse's decision boundaries too
        for model in models:
            model.core.head.requires_grad_(True)
    opts = readin_options(p, params.train, params.fewshot, task_of(views[0]) if views else None)
    bound = [BoundSession(m, 0) for m in models]  # model(x): the protocol's learners' interface
    fit_shot_learners(bound, views, seeds, normalised, opts, params.fewshot, params.train)
    return [m.eval() for m in models]


def fit_readin(
    donor: MultiSessionDecoder, view: SessionData, params: Params, seed: int
) -> MultiSessionDecoder:
    """One new read-in fitted on `view` (`shot_view`) under the strict protocol, whatever
    `fewshot.protocol` says: the adapt command's learner (it has no validation labels to
    stop on)."""
    fs = dataclasses.replace(params.fewshot, protocol="strict")
    return fit_readins(donor, [view], [seed], dataclasses.replace(params, fewshot=fs))[0]


def readin_detail(params: Params) -> dict[str, str]:
    """What a transfer read-in saw and how it was fitted, in words, for the result JSON."""
    fs, p = params.fewshot, params.multisession
    detail = protocol_detail("transfer", fs, params.train, None, 0)
    opts = readin_options(p, params.train, fs)
    detail["init"] = (
        f"ridge map (penalty {p.readin_ridge}) of the normalised shots onto the core's mean "
        "latent of each image (multisession.readin_init: template)"
        if p.readin_init == "template"
        else f"encoding model of the normalised shots on the {p.readin_rank} leading components "
        f"of the core's mean latents (ridge {p.readin_ridge}), decoded by their posterior mean "
        "(multisession.readin_init: encoding)"
        if p.readin_init == "encoding"
        else "random (multisession.readin_init: random)"
    )
    if p.adapt_head:
        detail["trained"] = "the read-in and the core's classifier (multisession.adapt_head)"
    if fs.protocol == "strict":
        detail["stopping"] = (
            f"a fixed budget of {opts.max_epochs} epochs (multisession.adapt_epochs) at lr "
            f"{opts.lr} (adapt_lr), last weights; no validation data"
        )
    else:
        detail["labels"] = "the shots, plus the whole validation split for early stopping"
        detail["stopping"] = (
            f"early stopping on the validation split, at most {opts.max_epochs} epochs, "
            f"patience {opts.patience}, lr {opts.lr}"
        )
    detail["draws"] = (
        "the draws of each k trained as one batch (npdecode.decode.batched)"
        if fs.protocol == "strict" and fs.repeats > 1 and batch_draws(fs, params.train)
        else "each draw trained on its own"
    )
    return detail


def ridge_map(x: np.ndarray, target: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Ridge regression of target (P, T, D) on x (P, T, U) over presentations and bins:
    (weight (U, D), bias (D,)), float32, penalty `alpha` times the number of samples.

    The primal or the dual form, whichever is smaller, so the solve costs at most
    min(P*T, U)^3 (a 2,500-unit session: a 2,500 x 2,500 system).
    """
    X = x.reshape(-1, x.shape[2]).astype(np.float64)  # (P*T, U)
    Y = target.reshape(-1, target.shape[2]).astype(np.float64)  # (P*T, D)
    x_mean, y_mean = X.mean(axis=0), Y.mean(axis=0)
    X, Y = X - x_mean, Y - y_mean
    lam = alpha * len(X)
    if X.shape[1] <= X.shape[0]:  # (U, U) system
        weight = np.linalg.solve(X.T @ X + lam * np.eye(X.shape[1]), X.T @ Y)
    else:  # (N, N) system
        weight = X.T @ np.linalg.solve(X @ X.T + lam * np.eye(X.shape[0]), Y)
    bias = y_mean - x_mean @ weight
    return weight.astype(np.float32), bias.astype(np.float32)


def encoding_map(
    x: np.ndarray, y: np.ndarray, templates: np.ndarray, rank: int, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """A read-in (weight (U, D), bias (D,), float32) from an encoding model of the shots
    (`multisession.readin_init: encoding`).

    The backward ridge map (`ridge_map`) fits U x D weights from k x C shots; here each
    unit is fitted forward instead: its normalised counts x (P, T, U) as a linear function
    of the `rank` leading components of the core's class latents `templates` (C, T, D) for
    its shots' classes y (P,) (ridge `alpha` per sample, on unit-variance component
    scores), r + 1 numbers per unit. Its residual variance is its noise. The read-in is then
    the posterior mean of the components given all units (a factor-analysis decoder, the
    components' prior their variance over the templates), mapped back to the D latents: an
    optimal linear combination of units however many there are.
    """
    n_classes, n_bins, dim = templates.shape
    flat = templates.reshape(n_classes * n_bins, dim).astype(np.float64)
    centre = flat.mean(axis=0)
    _, sv, vt = np.linalg.svd(flat - centre, full_matrices=False)
    r = max(1, min(rank, int(np.sum(sv > sv[0] * 1e-6))))
    scale = sv[:r] / np.sqrt(len(flat))  # (r,) sd of each component over the templates
    basis = vt[:r].T * scale  # (D, r): unit-variance scores -> latent
    scores = (templates[y].reshape(-1, dim) - centre) @ vt[:r].T / scale  # (N, r)
    X = x.reshape(-1, x.shape[2]).astype(np.float64)  # (N, U)
    x_mean, s_mean = X.mean(axis=0), scores.mean(axis=0)
    S, Xc = scores - s_mean, X - x_mean
    loading = np.linalg.solve(S.T @ S + alpha * len(S) * np.eye(r), S.T @ Xc)  # (r, U)
    noise = np.maximum((Xc - S @ loading).var(axis=0), 1e-3)  # (U,)
    weighted = loading / noise  # (r, U)
    decode = np.linalg.solve(np.eye(r) + weighted @ loading.T, weighted).T  # (U, r)
    weight = decode @ basis.T  # (U, D)
    bias = centre + s_mean @ basis.T - x_mean @ weight
    return weight.astype(np.float32), bias.astype(np.float32)


def adapted_logits(
    model: MultiSessionDecoder, mean: np.ndarray, sd: np.ndarray, X: np.ndarray, batch_size: int
) -> np.ndarray:
    """(P, C) logits of a one-session adapted model on counts X (P, T, U), in batches."""
    out = []
    for i in range(0, len(X), batch_size):
        x = ((X[i : i + batch_size] - mean) / sd).astype(np.float32)
        out.append(predict_logits(BoundSession(model, 0), x, batch_size).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, model.n_classes), np.float32)
