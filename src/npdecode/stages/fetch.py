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

A session of params `reach_sessions` (the macaque reaching data set, dvc.yaml's
`reach_fetch`) comes from `reach.source` instead: its twin, the Zenodo record or a local
`.mat` (or the NLB MC_RTT NWB), placed under data/raw/reach/<name>/ and read back by our
reader (docs/macaque.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

from npdecode.cli import run_stage
from npdecode.formats.files import write_json
from npdecode.nwb import read as nwb_read
from npdecode.params import Params, SessionId, integer_id
from npdecode.paths import Layout
from npdecode.reaching.session import fetch_reach, read_reaching
from npdecode.sources import allen, synthetic, twin
from npdecode.sources.local import fetch_local

PARAMS = ("fetch.source", "fetch.path", "fetch.synthetic", "bin.stimulus")
REACH_PARAMS = ("reach.source", "reach.path", "reach.twin_minutes")
# Read, but deliberately not DVC params of the stage: they change how a download is
# tried (timeouts, retries, which python runs AllenSDK), never the bytes that land.
UNTRACKED_PARAMS = ("fetch.allen",)
log = logging.getLogger(__name__)


def main(params: Params, session_id: SessionId, root: Path = Path(".")) -> None:
    """Fetch session `session_id` into `data/raw/session_<id>/`."""
    layout = Layout(root)
    if isinstance(session_id, str) and session_id in params.reach_sessions:
        fetch_reaching(params, session_id, layout)
        return
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


def fetch_reaching(params: Params, name: str, layout: Layout) -> None:
    """Fetch reaching session `name` and read it back (every check of its reader)."""
    mat = fetch_reach(params.reach, params.fetch, name, layout)
    r = read_reaching(layout, name)  # every check of the file (sorted units counted)
    summary = {
        "session_id": name,
        "source": params.reach.source,
        "n_units": len(r.spike_times),
        "n_spikes": int(sum(len(s) for s in r.spike_times)),
        "n_channels": len(r.chan_names),
        "duration_s": round(float(r.t[-1] - r.t[0]) + 0.004, 3),
        "mat_mb": round(mat.stat().st_size / 2**20, 1),
    }
    write_json(layout.reach_fetch_report(name), summary)
    log.info("session %s: %s verified: %d units, %.0f s", name, mat, len(r.spike_times),
             summary["duration_s"])  # fmt: skip


if __name__ == "__main__":
    run_stage("fetch", main)
