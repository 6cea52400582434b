"""List the real sessions a source offers and write them into params.yaml `sessions`.

dvc.yaml runs the per-session stages `foreach` over `sessions`, which DVC expands when it
parses dvc.yaml: it must be an explicit list of ids, never a query. This command turns
a query into that list:

    python -m npdecode.sources.sessions                      # list (source from params.yaml)
    python -m npdecode.sources.sessions --write              # ... and write them into params.yaml
    python -m npdecode.sources.sessions --source allen --type brain_observatory_1.1 --write
    python -m npdecode.sources.sessions --source local --type all

Which sessions: `--type` (an Allen session type, or `all`); else a string already in
params.yaml `sessions` (`all` or a session type, e.g. `sessions: brain_observatory_1.1`);
else every session whose type shows `bin.stimulus` (natural_scenes: the 32
brain_observatory_1.1 sessions). `--source allen` asks AllenSDK's session table (in the
AllenSDK environment); `--source local` reads the files below `fetch.path`; `--source
synthetic` with `fetch.synthetic.preset: allen` lists the 32 twins (ids 1-32, each with
the real session it mirrors).
"""

from __future__ import annotations

import argparse
import logging
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from npdecode.errors import NpdecodeError, ParamsError
from npdecode.formats.files import atomic_path
from npdecode.nwb import read as nwb_read
from npdecode.params import Params, params_from_dict
from npdecode.sources import allen, allen_vc
from npdecode.sources.local import scan

log = logging.getLogger("npdecode.sources.sessions")
COMMENT = "# by `python -m npdecode.sources.sessions --write`"


def load_params_with_query(path: Path) -> tuple[Params, str | None]:
    """params.yaml validated as usual, except that `sessions` may still be a query string."""
    if not path.exists():
        raise ParamsError(f"{path}: no such params file (run from the project root)")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, Mapping):
        raise ParamsError(f"{path}: must be a mapping")
    query = raw.get("sessions") if isinstance(raw.get("sessions"), str) else None
    if query is not None:
        raw = {**raw, "sessions": [1]}  # placeholder: validate every other key
    return params_from_dict(raw, source=str(path)), query


def wanted(session_type: str, type_filter: str | None, stimulus: str) -> bool:
    """Whether a session of `session_type` is selected by `--type` (or shows `stimulus`)."""
    if type_filter == "all":
        return True
    if type_filter is not None:
        return session_type == type_filter
    shown = nwb_read.STIMULI_BY_SESSION_TYPE.get(session_type)
    return shown is None or stimulus in shown


def allen_sessions(params: Params, root: Path) -> list[dict[str, Any]]:
    """AllenSDK's session table (id, session_type, specimen_id, has_nwb), from the AllenSDK env."""
    args = ["sessions", "--root", str(root.resolve()), *allen.policy_args(params.fetch.allen)]
    rows = allen.run_allen(params.fetch.allen, root, args)["sessions"]
    return [r for r in rows if r.get("has_nwb", True)]


def local_sessions(params: Params, root: Path) -> list[dict[str, Any]]:
    """The sessions of the NWB files below `fetch.path` whose identifier matches their name."""
    if not params.fetch.path:
        raise ParamsError("fetch.path must name the folder of NWB files for --source local")
    folder = Path(params.fetch.path)
    folder = folder if folder.is_absolute() else root / folder
    rows = []
    for f in scan(folder):
        identifier = nwb_read.read_identifier(f.path, f.session_id)
        if identifier != str(f.session_id):
            log.warning("skipping %s: its NWB identifier is %r", f.path, identifier)
            continue
        kind = nwb_read.read_session_type(f.path, f.session_id)
        rows.append({"id": f.session_id, "session_type": kind, "path": str(f.path)})
    return rows


def twin_sessions(params: Params) -> list[dict[str, Any]]:
    """The 32 twins of `fetch.synthetic.preset: allen` (ids 1-32), each with its real session."""
    if params.fetch.synthetic.preset != "allen":
        raise ParamsError(
            "fetch.source is synthetic with fetch.synthetic.preset none: its sessions are any "
            "ids you choose; set fetch.synthetic.preset: allen for the 32 twins of the real "
            "sessions, or pass --source allen or --source local"
        )
    return [
        {"id": s.twin_id, "session_type": "brain_observatory_1.1", "twin_of": s.session_id}
        for s in allen_vc.allen_sessions()
    ]


def write_sessions(path: Path, ids: list[int], query: str) -> None:
    """Replace the top-level `sessions:` entry of `path` by `ids`, keeping everything else.

    The rest of the file (comments included) is kept line for line; the result is parsed
    back and must hold exactly `ids` and the other keys unchanged before it is written.
    """
    text = path.read_text()
    lines = text.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith("sessions:")]
    if len(starts) != 1:
        raise ParamsError(f"{path}: expected one top-level `sessions:` entry, found {len(starts)}")
    first = last = starts[0]
    if first > 0 and lines[first - 1].startswith(COMMENT):
        first -= 1  # our own comment from an earlier --write
    while last + 1 < len(lines) and lines[last + 1][:1] in (" ", "\t", "-"):
        last += 1  # continuation: indented lines or a block list at column 0
    body = textwrap.fill(
        ", ".join(map(str, ids)), width=96, initial_indent="sessions: [", subsequent_indent="  "
    )
    new = f"{COMMENT} from {query!r} ({len(ids)} sessions)\n{body}]\n"
    updated = "".join(lines[:first]) + new + "".join(lines[last + 1 :])
    before, after = yaml.safe_load(text), yaml.safe_load(updated)
    if after.get("sessions") != ids or {**before, "sessions": ids} != after:
        raise ParamsError(f"{path}: rewriting `sessions` would change other keys; edit it by hand")
    with atomic_path(path) as tmp:
        tmp.write_text(updated)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m npdecode.sources.sessions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--source", choices=("allen", "local", "synthetic"), help="default: fetch.source"
    )
    parser.add_argument("--type", help="an Allen session type, or `all`")
    parser.add_argument("--write", action="store_true", help="write the ids into params.yaml")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--root", type=Path, default=Path("."), help="project root")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sessions: %(message)s")
    try:
        params, query = load_params_with_query(args.params)
        source = args.source or params.fetch.source
        type_filter = args.type or query
        if source == "synthetic":
            rows = twin_sessions(params)
        else:
            rows = (allen_sessions if source == "allen" else local_sessions)(params, args.root)
        chosen = [r for r in rows if wanted(r["session_type"], type_filter, params.bin.stimulus)]
        if not chosen:
            raise ParamsError(
                f"no {source} session matches {type_filter or params.bin.stimulus!r} "
                f"({len(rows)} sessions in all)"
            )
        for r in chosen:
            twin = f"\ttwin of {r['twin_of']}" if "twin_of" in r else ""
            print(f"{r['id']}\t{r['session_type']}{twin}")
        what = type_filter or f"sessions showing {params.bin.stimulus}"
        log.info("%d of %d %s sessions match %s", len(chosen), len(rows), source, what)
        if args.write:
            write_sessions(args.params, sorted(int(r["id"]) for r in chosen), what)
            log.info("wrote %d session ids into %s `sessions`", len(chosen), args.params)
    except NpdecodeError as err:
        print(f"npdecode sessions: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
