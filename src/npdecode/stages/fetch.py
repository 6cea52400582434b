"""Stage `fetch`: put one session's NWB file (and its metadata tables) under data/raw/.

`fetch.source` picks where it comes from:
- `synthetic` (default): generate an Allen-format session with known ground truth;
  with `fetch.synthetic.preset: allen`, ids 1-32 are twins of the real sessions.
- `allen`: download it from the Allen Brain Observatory with AllenSDK's project cache,
  run in the separate AllenSDK environment (`fetch.allen.python`, see `npdecode.sources.allen_runner`).
- `local`: an NWB file already on disk below `fetch.path` (a DANDI download, a
  colleague's AllenSDK cache), hardlinked or copied in.
Real sessions get `sessions/probes/channels/units.csv` (Allen's columns) and `fetch.json`
(origin and content summary) beside the NWB; see docs/allen.md, "Real Allen sessions".
"""

from __future__ import annotations

import logging
from pathlib import Path

from npdecode.cli import run_stage
from npdecode.formats.files import write_json
from npdecode.nwb import read as nwb_read
from npdecode.params import Params, SessionId, integer_id
from npdecode.paths import Layout
from npdecode.sources import allen, synthetic, twin
from npdecode.sources.local import fetch_local

PARAMS = ("fetch.source", "fetch.path", "fetch.synthetic", "bin.stimulus")
# Read, but deliberately not DVC params of the stage: they change how a download is
# tried (timeouts, retries, which python runs AllenSDK), never the bytes that land.
UNTRACKED_PARAMS = ("fetch.allen",)
log = logging.getLogger(__name__)


def main(params: Params, session_id: SessionId, root: Path = Path(".")) -> None:
    """Fetch session `session_id` into `data/raw/session_<id>/`."""
    layout = Layout(root)
    source = params.fetch.source
    stimulus = params.bin.stimulus
    nwb_id = integer_id(session_id, f"fetch.source {source} (Allen-format NWB)")
    if source == "synthetic" and params.fetch.synthetic.preset == "allen":
        twin.fetch_twin(params.fetch.synthetic, nwb_id, layout, stimulus)
    elif source == "synthetic":
        synthetic.fetch_synthetic(params.fetch.synthetic, nwb_id, layout, stimulus)
    elif source == "allen":
        allen.fetch_allen(params.fetch.allen, nwb_id, stimulus, layout)
    else:
        folder = Path(params.fetch.path or "")
        fetch_local(folder if folder.is_absolute() else root / folder, nwb_id, stimulus, layout)
    # Every source verified the file before placing it (a failed fetch leaves the old
    # session); read again here, in the main environment, for the summary.
    s = nwb_read.verify_session_nwb(layout.nwb(session_id), nwb_id, stimulus)
    log.info(
        "session %d: %s verified: %d units, %d spikes, %d channels, %d %s presentations",
        session_id,
        s.path,
        s.n_units,
        s.n_spikes,
        s.n_channels,
        s.n_presentations,
        stimulus,
    )
    summary = {
        "session_id": session_id,
        "source": source,
        "n_units": s.n_units,
        "n_spikes": s.n_spikes,
        "n_presentations": s.n_presentations,
        "nwb_mb": round(s.size_bytes / 2**20, 1),
    }
    write_json(layout.fetch_report(session_id), summary)


if __name__ == "__main__":
    run_stage("fetch", main)
