"""The split folder `data/split/<id>/`: written by the split stage, read by every model.

Files: `{train,val,test}.npz` (`X` (P, T, U) counts, `y`, `presentation_id`), `norm.npz`
(unit ids, train-split mean and sd), `graph.npz` (the ST-GAT unit graph), `units.parquet`
(unit metadata) and `meta.json` (session, mouse, bins, classes, counts per split, and the
sha256 of each split's presentation ids: `load_session` refuses a file that is not the one
recorded).

The npz members are stored uncompressed and `X` in C order, so one presentation's counts
are one contiguous run of bytes in the file: `load_session(..., lazy=True)` reads only
the presentations a batch needs (the shared decoder trains on dozens of sessions that
would not fit in memory together).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from npdecode.errors import DataError
from npdecode.formats.files import (
    atomic_path,
    corrupt,
    read_json,
    read_npz,
    read_parquet,
    save_npz,
    write_json,
    write_parquet,
)
from npdecode.params import SessionId, session_id_of

SPLITS = ("train", "val", "test")
SPLIT_MEMBERS = ("X", "y", "presentation_id")  # of each {train,val,test}.npz
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredArray:
    """A C-order array at byte `offset` of `path` (an uncompressed npz member).

    `rows` reads presentations with plain file reads: the file is never mapped, so what
    the page cache holds of it never counts toward this process's resident memory.
    """

    path: Path
    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype

    def rows(self, index: np.ndarray) -> np.ndarray:
        """A copy of `array[index]` for integer `index` along axis 0, in that order."""
        index = np.asarray(index, dtype=np.int64)
        n_rows = self.shape[0]
        if index.size and (index.min() < -n_rows or index.max() >= n_rows):
            raise IndexError(f"row index out of range for {n_rows} rows of {self.path}")
        index = np.where(index < 0, index + n_rows, index)
        out = np.empty((len(index), *self.shape[1:]), dtype=self.dtype)
        if not out.size:
            return out
        row_bytes = out[:1].nbytes
        order = np.argsort(index, kind="stable")
        sorted_rows = index[order]
        # runs of consecutive rows are one read each
        breaks = np.flatnonzero(np.diff(sorted_rows) != 1) + 1
        starts = np.concatenate([[0], breaks]).astype(np.int64)
        stops = np.concatenate([breaks, [len(index)]]).astype(np.int64)
        buffer = np.empty_like(out)  # rows in sorted order
        raw = buffer.reshape(len(index), -1).view(np.uint8)  # (n, row_bytes)
        with open(self.path, "rb", buffering=0) as fh:
            for a, b in zip(starts.tolist(), stops.tolist(), strict=True):
                if a == b:
                    continue
                fh.seek(self.offset + int(sorted_rows[a]) * row_bytes)
                got = fh.readinto(raw[a:b].data.cast("B"))
                if got != (b - a) * row_bytes:
                    raise corrupt(self.path, "npz: X is shorter than its header says")
        out[order] = buffer
        return out


@dataclass(frozen=True)
class Split:
    """One split: X (P, T, U) spike counts, y (P,) class index, presentation ids (P,)."""

    X: np.ndarray
    y: np.ndarray
    presentation_id: np.ndarray
    # set when loaded lazily: X is then a read-only memmap, and `rows` reads from the file
    stored: StoredArray | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.y)

    def rows(self, index: np.ndarray) -> np.ndarray:
        """An in-memory copy of X[index]; a lazily loaded split reads just those rows."""
        return self.stored.rows(index) if self.stored is not None else self.X[index]

    def subset(self, index: np.ndarray) -> Split:
        """The presentations `index`, in memory."""
        return Split(self.rows(index), self.y[index], self.presentation_id[index])

    def columns(self, units: np.ndarray | slice, bins: slice = slice(None)) -> Split:
        """The same presentations with only some bins and units: X[:, bins, units]."""
        return Split(self.X[:, bins][:, :, units], self.y, self.presentation_id)


@dataclass(frozen=True)
class SessionData:
    """Train/val/test splits plus everything fitted on train alone.

    `specimen_id` is the mouse (one mouse can have several sessions), when the file says.

    Attributes:
        frames: (C,) the Allen `frame` of each class index (-1 = blank).
        unit_ids: (U,) unit id of each feature column.
        mean, std: (U,) per-unit count mean and sd over training presentations and bins.
        edge_index: (2, E) unit graph (source, target) for ST-GAT, built on train only.
        edge_weight: (E,) weight of each edge.
        units: metadata of the U units (probe, area, positions, quality metrics).
    """

    session_id: SessionId
    train: Split
    val: Split
    test: Split
    frames: np.ndarray
    unit_ids: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    edge_index: np.ndarray
    edge_weight: np.ndarray
    units: pd.DataFrame
    n_bins: int
    bin_width_s: float
    specimen_id: str | None = None

    @property
    def n_classes(self) -> int:
        return len(self.frames)

    @property
    def n_units(self) -> int:
        return len(self.unit_ids)

    def normalise(self, X: np.ndarray) -> np.ndarray:
        """Counts -> float32 z-scores with the training split's statistics."""
        return ((X - self.mean) / self.std).astype(np.float32)

    def select(
        self, units: np.ndarray | None = None, bins: tuple[int, int] | None = None
    ) -> SessionData:
        """The session seen through some units (column indices, any order) and/or the bins
        `[start, stop)` of every presentation.

        Per-unit statistics are the split stage's (train split, all bins); the unit graph
        keeps the edges between kept units, renumbered. With every unit in order and
        every bin, the arrays equal the original ones, so a model fits identically.
        """
        idx = np.arange(self.n_units) if units is None else np.asarray(units, dtype=np.int64)
        start, stop = (0, self.n_bins) if bins is None else bins
        if (
            len(idx) == 0
            or len(np.unique(idx)) != len(idx)
            or idx.min() < 0
            or idx.max() >= self.n_units
        ):
            raise ValueError(
                f"units must be distinct column indices below {self.n_units}, got {idx}"
            )
        if not 0 <= start < stop <= self.n_bins:
            raise ValueError(f"bins must satisfy 0 <= start < stop <= {self.n_bins}, got {bins}")
        new = np.full(self.n_units, -1, dtype=np.int64)
        new[idx] = np.arange(len(idx))
        src, dst = new[self.edge_index[0]], new[self.edge_index[1]]
        kept = (src >= 0) & (dst >= 0)
        window = slice(start, stop)
        return dataclasses.replace(
            self,
            train=self.train.columns(idx, window),
            val=self.val.columns(idx, window),
            test=self.test.columns(idx, window),
            unit_ids=self.unit_ids[idx],
            mean=self.mean[idx],
            std=self.std[idx],
            edge_index=np.stack([src[kept], dst[kept]]).astype(self.edge_index.dtype),
            edge_weight=self.edge_weight[kept],
            units=self.units.iloc[idx].reset_index(drop=True),
            n_bins=stop - start,
        )


def write_split(out_dir: str | Path, data: SessionData, extra: dict) -> dict:
    """Write `data` as a split folder at `out_dir` (atomically); return its meta.json content.

    `extra` holds what the folder records besides the arrays (see `preprocess.make_split`).
    """
    meta = {
        "session_id": data.session_id,
        "specimen_id": data.specimen_id,
        "n_bins": data.n_bins,
        "bin_width_s": data.bin_width_s,
        "frames": data.frames,
        "n_units": data.n_units,
        "n": {name: len(getattr(data, name)) for name in SPLITS},
        # what each {train,val,test}.npz must hold: load_session checks it, so a file of
        # another split (a swapped blob in a shared cache or remote) is refused
        "ids_sha256": {name: ids_hash(getattr(data, name).presentation_id) for name in SPLITS},
        **extra,
    }
    meta["graph"] = {**meta.get("graph", {}), "n_edges": int(data.edge_index.shape[1])}
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for name in SPLITS:
            part = getattr(data, name)
            # C order: one presentation is one contiguous run of bytes (lazy reading);
            # save_npz writes every array in C order, uncompressed
            save_npz(tmp / f"{name}.npz", X=part.X, y=part.y, presentation_id=part.presentation_id)
        save_npz(tmp / "norm.npz", unit_ids=data.unit_ids, mean=data.mean, std=data.std)
        save_npz(tmp / "graph.npz", edge_index=data.edge_index, edge_weight=data.edge_weight)
        write_parquet(data.units, tmp / "units.parquet", compression="snappy")
        write_json(tmp / "meta.json", meta)
    return meta


def load_session(split_dir: str | Path, session_id: SessionId, lazy: bool = False) -> SessionData:
    """Read data/split/<id>/ written by the split stage.

    Args:
        split_dir: the session's split folder.
        session_id: the session it must hold.
        lazy: leave the counts on disk: each split's `X` is a read-only memmap of its npz
            member (checked against the member's CRC first) and `Split.rows` /
            `Split.subset` read only the presentations asked for. Everything else (labels,
            normalisation, units) is read into memory.
    """
    split_dir = Path(split_dir)
    if not (split_dir / "meta.json").exists():
        raise DataError(f"session {session_id}: {split_dir} has no meta.json (run the split stage)")
    meta = read_json(split_dir / "meta.json")
    if session_id_of(meta["session_id"]) != session_id_of(session_id):
        raise DataError(
            f"{split_dir}/meta.json is for session {meta['session_id']}, not {session_id}"
        )
    splits = {}
    for name in SPLITS:
        path = split_dir / f"{name}.npz"
        stored = _stored_member(path, "X") if lazy else None
        if stored is None:
            z = read_npz(path, SPLIT_MEMBERS)
            splits[name] = Split(z["X"], z["y"], z["presentation_id"])
        else:
            z = _read_members(path, ("y", "presentation_id"))
            X = _memmap(stored)
            splits[name] = Split(X, z["y"], z["presentation_id"], stored=stored)
        part = splits[name]
        if not len(part.X) == len(part.y) == len(part.presentation_id):
            raise DataError(
                f"session {session_id}: {path} holds {len(part.X)} presentations of counts but "
                f"{len(part.y)} labels: rebuild it with `dvc repro -f split@{session_id}`"
            )
        check_identity(path, part, meta, name, session_id)
    norm = read_npz(split_dir / "norm.npz", ("unit_ids", "mean", "std"))
    graph = read_npz(split_dir / "graph.npz", ("edge_index", "edge_weight"))
    return SessionData(
        session_id=session_id_of(session_id),
        **splits,
        frames=np.asarray(meta["frames"], dtype=np.int64),
        unit_ids=norm["unit_ids"],
        mean=norm["mean"],
        std=norm["std"],
        edge_index=graph["edge_index"],
        edge_weight=graph["edge_weight"],
        units=read_parquet(split_dir / "units.parquet"),
        n_bins=int(meta["n_bins"]),
        bin_width_s=float(meta["bin_width_s"]),
        specimen_id=meta.get("specimen_id"),
    )


def ids_hash(presentation_id: np.ndarray) -> str:
    """sha256 of a split's presentation ids (as int64): which presentations a file holds."""
    return hashlib.sha256(np.ascontiguousarray(presentation_id, dtype=np.int64).data).hexdigest()


def check_identity(path: Path, part: Split, meta: dict, name: str, session_id: int | str) -> None:
    """Raise DataError unless `path` holds what meta.json says split `name` holds.

    The split stage records, per file, how many presentations it holds, of which ids, and
    the counts' shape; a valid file of another split or session (the train split's npz
    in place of the test split's) fails here, before any score is computed on it.
    """
    fix = (
        f"restore it with `dvc checkout --force {path.parent}` from a cache you trust, or "
        f"rebuild it with `dvc repro -f split@{session_id}`"
    )
    recorded = meta.get("ids_sha256", {}).get(name)
    if recorded is None:
        raise DataError(
            f"session {session_id}: {path.parent}/meta.json records no identity for "
            f"{name}.npz (written by an older split stage): rebuild it with "
            f"`dvc repro -f split@{session_id}`"
        )
    want_n = int(meta["n"][name])
    shape = (int(meta["n_bins"]), int(meta["n_units"]))
    if len(part) != want_n or tuple(part.X.shape[1:]) != shape:
        raise DataError(
            f"session {session_id}: {path} holds {len(part)} presentations of "
            f"{tuple(part.X.shape[1:])} (bins, units), but the split stage recorded {want_n} "
            f"of {shape} for {name}: it is not this session's {name} split; {fix}"
        )
    if ids_hash(part.presentation_id) != recorded:
        raise DataError(
            f"session {session_id}: {path} holds other presentations than the split stage "
            f"recorded for {name} (presentation ids differ): it is not this session's "
            f"{name} split; {fix}"
        )


def _read_members(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Members `names` of a split npz (which must hold exactly `SPLIT_MEMBERS`), each read
    to its end so zip's CRC-32 is verified (as `files.read_npz` does for whole files)."""
    out = {}
    try:
        with zipfile.ZipFile(path) as zf:
            members = sorted(i.filename.removesuffix(".npy") for i in zf.infolist())
            if members != sorted(SPLIT_MEMBERS):
                raise ValueError(f"members {members}, expected {sorted(SPLIT_MEMBERS)}")
            for name in names:
                with zf.open(f"{name}.npy") as fh:
                    out[name] = np.lib.format.read_array(fh, allow_pickle=False)
                    if fh.read():  # reaching the end makes zipfile compare the CRC
                        raise ValueError(f"member {name!r} is longer than its array")
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, EOFError) as err:
        raise corrupt(path, f"npz: {err}") from err
    return out


def _memmap(stored: StoredArray) -> np.ndarray:
    if not np.prod(stored.shape):
        return np.zeros(stored.shape, dtype=stored.dtype)  # an empty file cannot be mapped
    return np.memmap(
        stored.path, dtype=stored.dtype, mode="r", offset=stored.offset, shape=stored.shape
    )


def _stored_member(path: Path, member: str) -> StoredArray | None:
    """Where npz member `member` (an .npy) sits in `path`, after checking its CRC in one
    streaming pass (constant memory) and that its size is its header's shape; None if it
    cannot be read in place (compressed, Fortran order). A damaged file: CorruptError
    naming it and the `dvc checkout --force` / `dvc repro -f` fix (`files.corrupt`)."""
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo(f"{member}.npy")
            with zf.open(info) as fh:  # the zip module checks the CRC when it reaches the end
                while fh.read(1 << 22):
                    pass
    except (zipfile.BadZipFile, KeyError, OSError, EOFError) as err:
        raise corrupt(path, f"npz: {err}") from err
    if info.compress_type != zipfile.ZIP_STORED:
        log.warning("%s: %s is compressed, so it is read whole", path, member)
        return None
    try:
        with open(path, "rb") as fh:
            fh.seek(info.header_offset)
            local = fh.read(30)  # the zip local file header
            if local[:4] != b"PK\x03\x04":
                raise ValueError("a broken zip local header")
            name_len, extra_len = struct.unpack("<HH", local[26:30])
            start = info.header_offset + 30 + name_len + extra_len
            fh.seek(start)
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            offset = fh.tell()
    except (ValueError, OSError, EOFError, struct.error) as err:
        raise corrupt(path, f"npz member {member!r}: {err}") from err
    if fortran or dtype.hasobject:
        log.warning("%s: %s is not a C-order plain array, so it is read whole", path, member)
        return None
    data_bytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if info.file_size != offset - start + data_bytes:
        raise corrupt(path, f"npz member {member!r} is not the size its header says")
    return StoredArray(path, offset, tuple(shape), dtype)
