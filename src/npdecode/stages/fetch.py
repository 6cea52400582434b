"""Stage `fetch`: put one session's NWB file (and its metadata tables) under data/raw/.

`fetch.source` picks where it comes from:
- `synthetic` (default): generate an Allen-format session with known ground truth.
- `allen`: download it from the Allen Brain Observatory with AllenSDK's project cache,
  run in the separate AllenSDK environment (`fetch.allen.python`, see `npdecode.allen`).
- `local`: an NWB file already on disk below `fetch.path` (a DANDI download, a
  colleague's AllenSDK cache), hardlinked or copied in.
Real sessions get `sessions/probes/channels/units.csv` (Allen's columns) and `fetch.json`
(origin and content summary) beside the NWB; see README, "Real Allen sessions".
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from npdecode import allenenv, nwbmeta, synthetic
from npdecode.cli import run_stage
from npdecode.io import atomic_path, write_json
from npdecode.local import fetch_local
from npdecode.nwb import SESSION_TYPE, write_session_nwb
from npdecode.params import Params, SyntheticParams
from npdecode.paths import Layout
from npdecode.runinfo import measure

PARAMS = ("fetch.source", "fetch.path", "fetch.synthetic", "bin.stimulus")
# Read, but deliberately not DVC params of the stage: they change how a download is
# tried (timeouts, retries, which python runs AllenSDK), never the bytes that land.
UNTRACKED_PARAMS = ("fetch.allen",)
log = logging.getLogger(__name__)


def main(params: Params, session_id: int, root: Path = Path(".")) -> None:
    """Fetch session `session_id` into `data/raw/session_<id>/`."""
    layout = Layout(root)
    source = params.fetch.source
    stimulus = params.bin.stimulus
    with measure() as cost:
        if source == "synthetic":
            fetch_synthetic(params.fetch.synthetic, session_id, layout.raw_dir(session_id))
        elif source == "allen":
            fetch_allen(params, session_id, layout)
        else:
            folder = Path(params.fetch.path or "")
            fetch_local(
                folder if folder.is_absolute() else root / folder, session_id, stimulus, layout
            )
        # Checked again here, in the main environment, with the readers later stages rely on.
        s = nwbmeta.verify_session_nwb(layout.nwb(session_id), session_id, stimulus)
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
    write_json(layout.fetch_report(session_id), {**summary, **cost})


def fetch_allen(params: Params, session_id: int, layout: Layout) -> None:
    """Run `npdecode.allen fetch` for one session in the AllenSDK environment."""
    args = ["fetch", str(session_id), "--root", str(layout.root.resolve())]
    args += ["--stimulus", params.bin.stimulus, *allenenv.policy_args(params.fetch.allen)]
    allenenv.run_allen(params.fetch.allen, layout.root, args)


def fetch_synthetic(params: SyntheticParams, session_id: int, out_dir: Path) -> None:
    """Write a synthetic session: NWB, ground truth and Allen-style metadata tables."""
    log.info("generating synthetic session %d (%d units)", session_id, params.n_units)
    session = synthetic.make_session(params, session_id)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        write_session_nwb(tmp / f"session_{session_id}.nwb", synthetic.as_record(session))
        t = session.truth
        np.savez(
            tmp / "truth.npz",
            rates_hz=t.rates_hz,
            frames=t.frames,
            unit_ids=t.unit_ids,
            baseline_hz=t.baseline_hz,
            step_s=np.float64(t.step_s),
            gain_sd=np.float64(t.gain_sd),
            presentation_gain=session.gains,
        )
        for name, table in metadata_tables(session).items():
            table.to_csv(tmp / f"{name}.csv", index=False)
    n_spikes = sum(len(s) for s in session.spike_times)
    log.info("wrote %s (%d units, %d spikes)", out_dir, len(session.units), n_spikes)


def metadata_tables(session: synthetic.SyntheticSession) -> dict[str, pd.DataFrame]:
    """sessions/probes/channels/units tables with the columns of Allen's project cache."""
    sid = session.session_id
    sessions = pd.DataFrame(
        {
            "id": [sid],
            "specimen_id": [session.specimen_id],
            "session_type": [SESSION_TYPE],
            "age_in_days": [110.0],
            "sex": ["M"],
            "full_genotype": ["Sst-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt"],
            "unit_count": [len(session.units)],
            "probe_count": [len(session.probes)],
            "channel_count": [len(session.channels)],
            "has_nwb": [True],
        }
    )
    probes = session.probes.rename(columns={"name": "name"})[
        ["id", "name", "sampling_rate", "lfp_sampling_rate", "has_lfp_data"]
    ].assign(ecephys_session_id=sid)
    channels = session.channels.rename(
        columns={"probe_id": "ecephys_probe_id", "location": "ecephys_structure_acronym"}
    )[
        [
            "id",
            "ecephys_probe_id",
            "probe_channel_number",
            "probe_vertical_position",
            "probe_horizontal_position",
            "ecephys_structure_acronym",
            "anterior_posterior_ccf_coordinate",
            "dorsal_ventral_ccf_coordinate",
            "left_right_ccf_coordinate",
        ]
    ]
    units = session.units.rename(columns={"peak_channel_id": "ecephys_channel_id"})
    return {"sessions": sessions, "probes": probes, "channels": channels, "units": units}


if __name__ == "__main__":
    run_stage("fetch", main)
