"""Stage `check_params`: validate params.yaml before any other stage runs, on every `dvc repro`.

DVC deletes a stage's outputs before it runs the stage, so a typo that only the stage
itself would catch costs that stage's outputs (a trained model), and invalid params that
no stage reads (an unknown top-level key, a session listed twice in `sessions`) would pass
whenever DVC sees nothing to rerun. This stage sits at the head of dvc.yaml: it depends on
params.yaml as a file (any edit reruns it) and on the code that validates it, and `fetch`
depends on its output, so every stage runs after it and none runs when it fails.

Its output holds the same bytes whenever the params are valid, so it never makes a later
stage rerun: after a typo is fixed, `dvc repro` finds everything up to date.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from npdecode.cli import run_stage
from npdecode.errors import DataError
from npdecode.formats.files import atomic_path, linked_folders
from npdecode.params import Params
from npdecode.paths import Layout

# Reads every key, so it lists params.yaml as a file dependency rather than params keys.
PARAMS = ()
OK_TEXT = "params.yaml passed npdecode's checks (src/npdecode/params.py)\n"
log = logging.getLogger(__name__)


def main(params: Params, root: Path = Path(".")) -> None:
    """Write the marker every stage depends on; `run_stage` has validated `params` already.

    Refuses first an output folder that is a link to a folder elsewhere: this stage runs
    before every other, before DVC touches any output (`files.linked_folders`).
    """
    linked = linked_folders(root)
    if linked:
        raise DataError(
            f"{linked[0]} is a symbolic link to the folder {os.path.realpath(linked[0])}: "
            "refusing to run, since DVC would make the files in that folder writable and "
            f"stages would write through it; remove the link (`rm {linked[0]}`, which keeps its "
            "target) and rerun, or link a whole top folder (data/, models/) to another disk"
        )
    path = Layout(root).params_ok
    with atomic_path(path) as tmp:
        tmp.write_text(OK_TEXT)
    log.info("params valid: %d sessions %s", len(params.sessions), list(params.sessions))


if __name__ == "__main__":
    run_stage("check_params", main, per_session=False)
