"""Stage `train_multisession`: one decoder per mouse (or for all sessions), and transfer.

Sessions are grouped by specimen (`multisession.group: mouse`) or all together (`all`).
For each group, a `MultiSessionDecoder` (per-session read-ins, shared core) is trained on
the training splits of all its sessions (early stopping on their pooled validation
splits) and scored on each session's own test split, in the single-session metrics
schema: `metrics/multisession/<id>.json`.

Transfer (`multisession.transfer`, groups of two or more sessions): each session in turn
is held out, the shared model is trained on the others, its core is frozen, and only a
new read-in for the held-out session is fitted on k presentations per image, on exactly
the draws of the single-session few-shot stage (same seeds, same presentations). Results
go to `metrics/fewshot/transfer/<id>.json`, beside the from-scratch few-shot curves.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from npdecode.cli import run_stage
from npdecode.data import SessionData, load_session
from npdecode.errors import DataError
from npdecode.io import atomic_path, read_json, write_csv, write_json
from npdecode.metrics import classification_metrics
from npdecode.models.multisession import MultiSessionConfig, MultiSessionDecoder, pack
from npdecode.params import FitParams, Params, as_dict
from npdecode.paths import Layout
from npdecode.runinfo import measure
from npdecode.stages.fewshot import draw_seed, fewshot_budget, sample_shots, summarise_draws
from npdecode.stages.train import model_metrics, predictions_table
from npdecode.training import FitOptions, fit, predict_logits, seed_everything

PARAMS = (
    "sessions",
    "multisession",
    "fewshot",
    "train.device",
    "train.seed",
    "train.batch_size",
    "train.amp",
    "train.lstm",
    "train.transformer",
)
MODEL = "multisession"
log = logging.getLogger(__name__)


def group_sessions(data: dict[int, SessionData], by: str) -> dict[str, list[int]]:
    """Groups of session ids: one per specimen (mouse), or one named `all`."""
    if by == "all":
        return {"all": sorted(data)}
    groups: dict[str, list[int]] = {}
    for sid, d in sorted(data.items()):
        groups.setdefault(
            f"mouse_{d.specimen_id}" if d.specimen_id else f"session_{sid}", []
        ).append(sid)
    return groups


def model_config(
    data: dict[int, SessionData], sids: list[int], params: Params
) -> MultiSessionConfig:
    """The shared model's config for sessions `sids`; checks they decode the same images."""
    first = data[sids[0]]
    for sid in sids[1:]:
        if not np.array_equal(data[sid].frames, first.frames) or data[sid].n_bins != first.n_bins:
            raise DataError(
                f"sessions {sids[0]} and {sid} differ in their images (frames) or bins: "
                "a shared decoder needs the same classes and bins in every session"
            )
    p = params.multisession
    core = as_dict(getattr(params.train, p.core))
    skip = {f.name for f in dataclasses.fields(FitParams)} | {"input_dropout"}
    return MultiSessionConfig(
        session_ids=tuple(sids),
        n_units=tuple(data[s].n_units for s in sids),
        n_bins=first.n_bins,
        n_classes=first.n_classes,
        core=p.core,
        latent=p.latent,
        input_dropout=p.input_dropout,
        core_config={k: v for k, v in core.items() if k not in skip},
    )


def fit_options(params: Params, fit: FitParams) -> FitOptions:
    return FitOptions(
        **{f.name: getattr(fit, f.name) for f in dataclasses.fields(FitParams)},
        batch_size=params.train.batch_size,
        seed=params.train.seed,
        device=params.train.device,
        amp=params.train.amp,
    )


def packed(
    data: dict[int, SessionData], cfg: MultiSessionConfig, split: str
) -> tuple[np.ndarray, np.ndarray]:
    """All sessions' samples of one split, packed: (sum P, T, U_max + 1) and labels."""
    u_max = max(cfg.n_units)
    xs, ys = [], []
    for i, sid in enumerate(cfg.session_ids):
        part = getattr(data[sid], split)
        xs.append(pack(data[sid].normalise(part.X), i, u_max))
        ys.append(part.y)
    return np.concatenate(xs), np.concatenate(ys)


def train_shared(
    data: dict[int, SessionData], sids: list[int], params: Params, live_dir: Path | None = None
) -> tuple[MultiSessionDecoder, dict[str, Any]]:
    """Train one shared decoder on the sessions `sids` (early stopping on pooled val)."""
    cfg = model_config(data, sids, params)
    seed_everything(params.train.seed)
    model = MultiSessionDecoder(cfg)
    opts = fit_options(params, params.multisession)
    _, info = fit(model, packed(data, cfg, "train"), packed(data, cfg, "val"), opts, live_dir)
    return model, info  # fit trains `model` in place


def session_logits(
    model: MultiSessionDecoder, data: SessionData, split: str, batch_size: int
) -> np.ndarray:
    """(P, C) logits of the shared model for one of its sessions."""
    index = model.cfg.session_ids.index(data.session_id)
    x = pack(data.normalise(getattr(data, split).X), index, max(model.cfg.n_units))
    return predict_logits(model, x, batch_size).cpu().numpy()


def transfer_curve(
    data: dict[int, SessionData], sids: list[int], held_out: int, params: Params
) -> dict[str, Any]:
    """Few-shot accuracy of a new read-in for `held_out` on a core trained on the others."""
    others = [s for s in sids if s != held_out]
    donor, info = train_shared(data, others, params)
    target = data[held_out]
    cfg = model_config(data, [held_out], params)  # the same core architecture as the donor's
    fs = params.fewshot
    budget = fewshot_budget(params.multisession, fs)
    out: dict[str, Any] = {
        "session_id": held_out,
        "specimen_id": target.specimen_id,
        "model": "transfer",
        "seed": fs.seed,
        "n_test": len(target.test),
        "core_sessions": others,
        "core_best_val_accuracy": info["best_val_accuracy"],
        "shots": {},
    }
    for k in fs.shots:
        runs = []
        for r in range(fs.repeats):
            seed = draw_seed(fs.seed, k, r)  # the single-session few-shot stage's draws
            idx = sample_shots(target.train.y, target.n_classes, k, np.random.default_rng(seed))
            shot = dataclasses.replace(target, train=target.train.subset(idx))
            model = _new_readin(cfg, donor, seed % 2**31)
            opts = dataclasses.replace(fit_options(params, budget), seed=seed % 2**31)
            fit(
                model,
                packed({held_out: shot}, cfg, "train"),
                packed({held_out: shot}, cfg, "val"),
                opts,
            )
            scores = session_logits(model, target, "test", params.train.batch_size)
            runs.append(
                {
                    "repeat": r,
                    "seed": seed,
                    "n_train": len(idx),
                    **classification_metrics(scores, target.test.y, target.n_classes),
                }
            )
        out["shots"][str(k)] = summarise_draws(runs)
        log.info("transfer to session %d, k=%d: %.3f", held_out, k, out["shots"][str(k)]["mean"])
    return out


def _new_readin(
    cfg: MultiSessionConfig, donor: MultiSessionDecoder, seed: int
) -> MultiSessionDecoder:
    """A one-session model with a fresh read-in and the donor's frozen core."""
    seed_everything(seed)
    model = MultiSessionDecoder(cfg)
    model.core.load_state_dict(donor.core_state())
    model.freeze_core()
    return model


def save_shared(path: Path, model: MultiSessionDecoder, data: dict[int, SessionData]) -> None:
    """Checkpoint of a shared model, with each session's units and normalisation."""
    sids = model.cfg.session_ids
    state = {
        "model": MODEL,
        "config": dataclasses.asdict(model.cfg),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "frames": torch.from_numpy(data[sids[0]].frames),
        "n_bins": data[sids[0]].n_bins,
        "sessions": {
            str(s): {
                "unit_ids": torch.from_numpy(data[s].unit_ids),
                "mean": torch.from_numpy(data[s].mean),
                "std": torch.from_numpy(data[s].std),
            }
            for s in sids
        },
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def main(params: Params, root: Path = Path(".")) -> None:
    """Train the shared decoders and write per-session metrics and transfer curves."""
    layout = Layout(root)
    data = {sid: load_session(layout.split_dir(sid), sid) for sid in params.sessions}
    models, metrics, predictions, transfer = {}, {}, {}, {}
    for name, sids in group_sessions(data, params.multisession.group).items():
        with measure() as cost:
            models[name], info = train_shared(data, sids, params)
        for sid in sids:
            scores = {
                split: session_logits(models[name], data[sid], split, params.train.batch_size)
                for split in ("train", "val", "test")
            }
            m = model_metrics(MODEL, data[sid], scores, read_json(layout.reference(sid)), info)
            metrics[sid] = {**m, "group": name, "group_sessions": sids, **cost}
            predictions[sid] = predictions_table(data[sid], scores["test"])
            log.info("%s, session %d: test accuracy %.3f", name, sid, m["test"]["accuracy"])
        for sid in sids:
            if not params.multisession.transfer or len(sids) < 2:
                why = (
                    "multisession.transfer is off"
                    if not params.multisession.transfer
                    else (f"{name} has no other session to train a core on")
                )
                log.info("no transfer to session %d: %s", sid, why)
                transfer[sid] = {
                    "session_id": sid,
                    "model": "transfer",
                    "skipped": why,
                    "shots": {},
                }
                continue
            with measure() as cost:
                transfer[sid] = transfer_curve(data, sids, sid, params)
            transfer[sid].update(chance=1.0 / data[sid].n_classes, **cost)
    outputs: dict[Path, dict[str, Any]] = {
        layout.root / "models" / MODEL: {f"{n}.pt": m for n, m in models.items()},
        layout.root / "metrics" / MODEL: {f"{s}.json": m for s, m in metrics.items()},
        layout.predictions(MODEL, 0).parent: {f"{s}.csv": p for s, p in predictions.items()},
        layout.root / "metrics" / "fewshot" / "transfer": {
            f"{s}.json": t for s, t in transfer.items()
        },
    }
    for folder, files in outputs.items():  # each folder whole, or not at all
        with atomic_path(folder) as tmp:
            tmp.mkdir()
            for fname, obj in files.items():
                _write(tmp / fname, obj, data)


def _write(path: Path, obj: Any, data: dict[int, SessionData]) -> None:
    if isinstance(obj, MultiSessionDecoder):
        save_shared(path, obj, data)
    elif path.suffix == ".csv":
        write_csv(obj, path)
    else:
        write_json(path, obj)


if __name__ == "__main__":
    run_stage("multisession", main, per_session=False)
