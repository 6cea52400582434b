"""Adapt a shared decoder to a session it has never seen: fit that session's read-in.

    python -m npdecode.decode.adapt models/multisession/all.pt data/split/<id> --session-id <id> \\
        --out models/adapted/<id>.pt [--shots K] [--seed S] [--params params.yaml]

The checkpoint's core (trained on other mice by `train_multisession`) stays frozen; only a
new read-in for the session's units is fitted, on K training presentations per image
(`--shots`, drawn with `--seed`) or on the whole training split, for the fixed budget of
`multisession.adapt_epochs` at `adapt_lr` with the normalisation of the presentations it is
fitted on (the strict few-shot protocol: no validation data). The written checkpoint holds
that one session, so `npdecode.formats.checkpoint.predict(out, counts, unit_ids,
session_id=<id>)` serves it like any other. The session's split folder comes from the pipeline's split stage (run the pipeline
up to `split@<id>` for a new session); its images and bins must be the checkpoint's.

A POYO checkpoint (the optional `poyo` extra) is adapted its authors' way, on a session of
either data set (an Allen split folder, or a macaque one `data/reach/<name>` with
`--session-id <name>`), reading the session's spikes under `--root`:
npdecode.decode.poyo_adapt.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np

from npdecode.decode.fewshot import shot_view
from npdecode.decode.session import task_of
from npdecode.decode.shared import adapted_logits, fit_readin
from npdecode.errors import DataError, NpdecodeError
from npdecode.formats.checkpoint import load_checkpoint, read_checkpoint, save_shared
from npdecode.formats.split import SessionData, load_session
from npdecode.models.multisession import MultiSessionDecoder
from npdecode.params import Params, SessionId, load_params, session_id_of

log = logging.getLogger(__name__)


def adapt(
    checkpoint: Path,
    split_dir: Path,
    session_id: SessionId,
    params: Params,
    shots: int | None = None,
    seed: int = 0,
) -> tuple[MultiSessionDecoder, SessionData, dict[str, Any]]:
    """Fit a read-in for `session_id` under the frozen core of a shared `checkpoint`.

    Returns:
        The one-session model, the session (its normalisation replaced by the one the
        read-in was fitted with, as the checkpoint must store it) and a summary: what it
        was fitted on and its val and test accuracy.
    """
    donor, ckpt = load_checkpoint(checkpoint)
    if not isinstance(donor, MultiSessionDecoder):
        raise DataError(
            f"{checkpoint} is a {ckpt['model']} checkpoint; adapting needs a shared decoder "
            "(models/multisession/<group>.pt from train_multisession)"
        )
    data = load_session(split_dir, session_id, lazy=True)
    frames = ckpt["frames"].numpy()
    if not np.array_equal(data.frames, frames) or data.n_bins != ckpt["n_bins"]:
        raise DataError(
            f"session {session_id} ({split_dir}) and the decoder {checkpoint} differ in their "
            f"images (frames) or bins ({data.n_classes} classes x {data.n_bins} bins vs "
            f"{len(frames)} x {ckpt['n_bins']}): split the session with the same params"
        )
    task = task_of(data)
    if shots is None:
        idx = np.arange(len(data.train))
    else:
        idx = task.draw_shots(data.train.y, shots, np.random.default_rng(seed))
    view = shot_view(data, idx, "strict")  # its labelled presentations and their statistics
    model = fit_readin(donor, view, params, seed)
    mean, sd = view.mean, view.std
    adapted = dataclasses.replace(data, mean=mean, std=sd)
    summary: dict[str, Any] = {
        "session_id": session_id,
        "adapted_from": str(checkpoint),
        "core_sessions": list(donor.session_ids),
        "shots_per_image": shots if shots is not None else "all",
        "n_train": len(idx),
        "seed": seed,
        "protocol": "strict",
        "epochs": params.multisession.adapt_epochs,
        "lr": params.multisession.adapt_lr,
    }
    for split in ("val", "test"):
        part = getattr(data, split)
        X = part.rows(np.arange(len(part)))
        logits = adapted_logits(model, mean, sd, X, params.train.batch_size)
        summary[split] = task.metrics(logits, part.y)
    return model, adapted, summary


def poyo_checkpoint(path: Path) -> bool:
    """Whether `path` holds POYO (`npdecode.decode.poyo_adapt` adapts it), its hash checked."""
    return bool(read_checkpoint(path).get("model") == "poyo")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m npdecode.decode.adapt", description=__doc__)
    parser.add_argument("checkpoint", type=Path, help="a shared decoder, models/multisession/*.pt")
    parser.add_argument("split_dir", type=Path, help="the new session's split folder")
    parser.add_argument("--session-id", type=session_id_of, required=True, help="an id or name")
    parser.add_argument("--out", type=Path, required=True, help="the checkpoint to write")
    parser.add_argument("--shots", type=int, default=None, help="presentations per image")
    parser.add_argument("--seed", type=int, default=0, help="draws the shots, seeds the fit")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument(
        "--root", type=Path, default=Path("."), help="POYO: the project whose data/raw it reads"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s adapt: %(message)s")
    try:
        if args.shots is not None and args.shots < 1:
            raise DataError(f"--shots must be >= 1, got {args.shots}")
        params = load_params(args.params) if args.params.exists() else Params()
        if poyo_checkpoint(args.checkpoint):  # POYO (optional extra): either data set
            from npdecode.decode import poyo_adapt

            summary = poyo_adapt.adapt(
                args.checkpoint, args.split_dir, args.session_id, params, args.root, args.out,
                args.shots, args.seed,
            )  # fmt: skip
            log.info("session %s: POYO adapted; test %s; wrote %s", args.session_id,
                     summary["test"], args.out)  # fmt: skip
            return
        model, data, summary = adapt(
            args.checkpoint, args.split_dir, args.session_id, params, args.shots, args.seed
        )
        save_shared(args.out, model.cpu(), {args.session_id: data}, provenance=summary)
    except NpdecodeError as err:
        print(f"npdecode adapt: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    log.info(
        "session %s: read-in fitted on %d presentations; val accuracy %.3f, test accuracy "
        "%.3f; wrote %s",
        args.session_id,
        summary["n_train"],
        summary["val"]["accuracy"],
        summary["test"]["accuracy"],
        args.out,
    )


if __name__ == "__main__":
    main()
