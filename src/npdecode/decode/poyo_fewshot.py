"""POYO's few-shot curve on an Allen session, on the draws every model of the session sees.

A strict draw's POYO sees its shots only (the spike tokens of their windows), has no
validation data and trains the fixed budget of our deep learners: `fewshot.steps`
optimiser steps in whole epochs, at most `train.poyo.max_epochs`
(`npdecode.decode.fewshot.strict_epochs`), keeping its last weights. The draws come
from `npdecode.decode.fewshot.fewshot_curve` (same seeds, shots and scoring), so the
report pairs POYO's predictions with every other model's, draw by draw.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from npdecode.decode.fewshot import Draw, session_fewshot_curve, strict_epochs
from npdecode.decode.poyo import SessionWindows, build_poyo, fit_poyo, predict_poyo
from npdecode.decode.poyo_allen import poyo_fit, subset
from npdecode.errors import ParamsError
from npdecode.formats.split import SessionData
from npdecode.models.poyo import POYODecoder
from npdecode.params import FewshotParams, TrainParams


def fit_shots(
    windows: SessionWindows, n_classes: int, train: TrainParams, fs: FewshotParams, seed: int
) -> POYODecoder:
    """A strict few-shot learner: POYO fitted on one draw's shots alone for the fixed budget
    of our deep learners (`strict_epochs`), its last weights kept."""
    n = len(windows.starts)
    epochs = strict_epochs(train.poyo.fit.max_epochs, fs, n, train.batch_size)
    model = build_poyo(train.poyo.arch, [windows], "class", n_classes, seed)
    fit_poyo(model, [windows], poyo_fit(train, epochs, seed))
    return model.eval()


def session_curve(
    data: SessionData,
    windows: Mapping[str, SessionWindows],
    train: TrainParams,
    fs: FewshotParams,
) -> tuple[dict, dict[int, np.ndarray], dict[int, list[int]]]:
    """POYO's few-shot curve on a session, on the draws of every model
    (`npdecode.decode.fewshot.fewshot_curve`: the same shots, seeds and scoring), the
    result JSON in `npdecode.decode.fewshot.session_curve`'s schema."""
    if fs.protocol != "strict":
        raise ParamsError(
            f"session {data.session_id}: POYO's few-shot curve runs the strict protocol only "
            f"(fewshot.protocol is {fs.protocol!r})"
        )

    def fit_group(group: list[tuple[np.ndarray, Draw]]) -> list[np.ndarray]:
        out = []
        for idx, d in group:
            net = fit_shots(subset(windows["train"], idx), data.n_classes, train, fs, d.train_seed)
            out.append(predict_poyo(net, windows["test"], train.batch_size))
        return out

    shots, predicted = session_fewshot_curve(fit_group, data, fs, f"poyo session {data.session_id}")
    f = train.poyo.fit
    result = {
        "session_id": data.session_id,
        "specimen_id": data.specimen_id,
        "model": "poyo",
        "protocol": fs.protocol,
        "protocol_detail": {
            "sees": "its k*C shots only (spike tokens of their windows); no validation data",
            "budget": f"{fs.steps} optimiser steps (whole epochs, at most {f.max_epochs})",
            "weights": "last epoch",
        },
        "seed": fs.seed,
        "n_test": len(data.test),
        "shots": shots,
    }
    seeds = {int(k): [r["seed"] for r in v["repeats"]] for k, v in shots.items()}
    return result, predicted, seeds
