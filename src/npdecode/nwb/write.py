"""Write Allen Visual Coding – Neuropixels NWB files without AllenSDK (main environment only).

pynwb with the `ndx-aibs-ecephys` extension types built here from their spec, so
AllenSDK 2.16 can open what we write; `npdecode.nwb.read` reads it back.
"""

from __future__ import annotations

import functools
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import h5py
import numpy as np
import pandas as pd
import pynwb
from hdmf.build.warnings import MissingRequiredBuildWarning
from hdmf.common import VectorData, VectorIndex
from hdmf.data_utils import AbstractDataChunkIterator, DataChunk
from pynwb.ecephys import ElectrodesTable
from pynwb.spec import NWBAttributeSpec, NWBGroupSpec, NWBNamespaceBuilder

from npdecode.formats.files import atomic_path
from npdecode.nwb.read import ELECTRODES, N_IMAGES_ATTR

NAMESPACE = "ndx-aibs-ecephys"

SESSION_TYPE = "brain_observatory_1.1"


# --- extension types ----------------------------------------------------------------


def _extension_specs() -> list[NWBGroupSpec]:
    """The three ndx-aibs-ecephys types we write, as AllenSDK 2.16.2 declares them."""
    return [
        NWBGroupSpec(
            neurodata_type_def="EcephysProbe",
            neurodata_type_inc="Device",
            doc="A neuropixels probe device",
            attributes=[
                NWBAttributeSpec("sampling_rate", "The sampling rate for the device", "float64"),
                NWBAttributeSpec("probe_id", "Unique ID of the neuropixels probe", "int"),
            ],
        ),
        NWBGroupSpec(
            neurodata_type_def="EcephysElectrodeGroup",
            neurodata_type_inc="ElectrodeGroup",
            doc="A group consisting of the channels on a single neuropixels probe",
            attributes=[
                NWBAttributeSpec("has_lfp_data", "Indicates availability of LFP data", "bool"),
                NWBAttributeSpec("probe_id", "Unique ID of the neuropixels probe", "int"),
                NWBAttributeSpec(
                    "lfp_sampling_rate", "The sampling rate of this group's LFP", "float64"
                ),
            ],
        ),
        NWBGroupSpec(
            neurodata_type_def="EcephysSpecimen",
            neurodata_type_inc="Subject",
            doc="Metadata for ecephys specimen",
            attributes=[
                NWBAttributeSpec("specimen_name", "Full name of specimen", "text"),
                NWBAttributeSpec("age_in_days", "Age of specimen in days", "float"),
                NWBAttributeSpec("strain", "Specimen strain", "text"),
            ],
        ),
    ]


@functools.cache
def ecephys_types() -> tuple[type, type, type]:
    """(EcephysProbe, EcephysElectrodeGroup, EcephysSpecimen) pynwb classes.

    pynwb keeps one type registry per process; the namespace is registered once, and
    reused if reading an Allen file already registered it.
    """
    names = ("EcephysProbe", "EcephysElectrodeGroup", "EcephysSpecimen")
    try:
        return tuple(pynwb.get_class(n, NAMESPACE) for n in names)  # type: ignore[return-value]
    except (KeyError, ValueError):
        pass
    builder = NWBNamespaceBuilder(
        doc="Allen Institute Ecephys Extension", name=NAMESPACE, version="0.2.0"
    )
    for spec in _extension_specs():
        builder.add_spec(f"{NAMESPACE}.extension.yaml", spec)
    with tempfile.TemporaryDirectory() as tmp:
        builder.export(f"{NAMESPACE}.namespace.yaml", outdir=tmp)
        pynwb.load_namespaces(str(Path(tmp) / f"{NAMESPACE}.namespace.yaml"))
    return tuple(pynwb.get_class(n, NAMESPACE) for n in names)  # type: ignore[return-value]


# --- writing ------------------------------------------------------------------------


@dataclass(frozen=True)
class SpikeStream:
    """Spike times and amplitudes drawn chunk by chunk while the file is written.

    A big session never holds its spikes twice (generated, then concatenated): the ragged
    columns are written one chunk at a time, in unit order, as the chunks are drawn.

    Attributes:
        counts: (U,) spikes of each unit; the ragged index is written from it first.
        times: returns a fresh iterator of float64 arrays: unit 0's sorted times, unit 1's,
            ... in any chunking; together exactly counts.sum() values.
        amplitudes: the same for each spike's amplitude (V).
    """

    counts: np.ndarray
    times: Callable[[], Iterator[np.ndarray]]
    amplitudes: Callable[[], Iterator[np.ndarray]]


@dataclass(frozen=True)
class SessionRecord:
    """A session in Allen's layout, ready to write (see `synthetic.make_session`).

    `spike_times` is one sorted array per unit, or a `SpikeStream` for a big session.
    `description` and `notes` become the NWB's session_description and notes (a synthetic
    twin says there which real session it mirrors); `specimen_name` that of the subject.
    """

    session_id: int
    specimen_id: int
    start_time: object  # timezone-aware datetime
    probes: pd.DataFrame
    channels: pd.DataFrame
    units: pd.DataFrame
    spike_times: list[np.ndarray] | SpikeStream
    presentations: dict[str, pd.DataFrame]  # stimulus name -> presentations table
    invalid_times: pd.DataFrame
    # stimulus name -> how many images it shows (frames -1..n-1), recorded in the file so
    # readers check labels against it (`npdecode.nwb.read.images_shown`)
    n_images: dict[str, int] = field(default_factory=dict)
    description: str = "Data and metadata for an Ecephys session"
    notes: str | None = None
    specimen_name: str | None = None


UNIT_COLUMNS = (
    "peak_channel_id",
    "local_index",
    "cluster_id",
    "quality",
    "firing_rate",
    "isi_violations",
    "presence_ratio",
    "amplitude_cutoff",
    "snr",
    "amplitude",
    "waveform_duration",
    "l_ratio",
    "d_prime",
)


def write_session_nwb(path: str | Path, record: SessionRecord) -> None:
    """Write `record` as an Allen-format NWB file at `path` (atomically).

    The same record always gives the same bytes: hdmf's random object UUIDs are drawn
    from a generator seeded by the session id, so DVC sees an unchanged file (and reruns
    nothing downstream) when fetch regenerates a session.
    """
    rng = np.random.default_rng([record.session_id, 99])
    seeded = lambda: uuid.UUID(bytes=rng.bytes(16), version=4)  # noqa: E731
    with mock.patch("hdmf.container.uuid4", seeded):
        nwb = _build_nwbfile(record)
    with atomic_path(path) as tmp, warnings.catch_warnings():
        # EcephysSpecimen declares a `strain` attribute that core Subject (NWB >= 2.6) also
        # has as a dataset; pynwb writes the dataset and warns about the attribute.
        warnings.filterwarnings("ignore", category=MissingRequiredBuildWarning)
        with pynwb.NWBHDF5IO(str(tmp), "w") as io:
            io.write(nwb)
        _patch_file(tmp, record.n_images)


def _build_nwbfile(record: SessionRecord) -> pynwb.NWBFile:
    probe_cls, group_cls, specimen_cls = ecephys_types()
    extra = {"notes": record.notes} if record.notes is not None else {}
    nwb = pynwb.NWBFile(
        session_description=record.description,
        identifier=str(record.session_id),
        session_id=str(record.session_id),
        session_start_time=record.start_time,
        file_create_date=record.start_time,  # fixed, so the same session gives the same bytes
        institution="Allen Institute for Brain Science",
        stimulus_notes=SESSION_TYPE,
        **extra,
    )
    nwb.subject = specimen_cls(
        subject_id=str(record.specimen_id),
        specimen_name=record.specimen_name or f"Sst-IRES-Cre;Ai32-{record.specimen_id}",
        age_in_days=110.0,
        age="P110D",
        strain="C57BL/6J",
        sex="M",
        species="Mus musculus",
        genotype="Sst-IRES-Cre/wt;Ai32(RCL-ChR2(H134R)_EYFP)/wt",
    )
    groups = _add_probes(nwb, record.probes, probe_cls, group_cls)
    _add_electrodes(nwb, record.channels, groups)
    _add_units(nwb, record.units, record.spike_times)
    for name, table in record.presentations.items():
        nwb.add_time_intervals(_intervals(f"{name}_presentations", table))
    invalid = pynwb.epoch.TimeIntervals(name="invalid_times", description="invalid times")
    for row in record.invalid_times.itertuples():
        invalid.add_interval(
            start_time=row.start_time, stop_time=row.stop_time, tags=list(row.tags)
        )
    nwb.invalid_times = invalid
    return nwb


def _add_probes(nwb: pynwb.NWBFile, probes: pd.DataFrame, probe_cls: type, group_cls: type) -> dict:
    groups = {}
    for p in probes.itertuples():
        device = probe_cls(
            name=p.name,
            description="Neuropixels 1.0 Probe",
            sampling_rate=float(p.sampling_rate),
            probe_id=int(p.id),
        )
        nwb.add_device(device)
        groups[int(p.id)] = group_cls(
            name=p.name,
            description="Ecephys Electrode Group",
            location=p.location,
            device=device,
            has_lfp_data=bool(p.has_lfp_data),
            probe_id=int(p.id),
            lfp_sampling_rate=float(p.lfp_sampling_rate),
        )
        nwb.add_electrode_group(groups[int(p.id)])
    return groups


def _vector(name: str, data: object, doc: str | None = None) -> VectorData:
    return VectorData(name=name, description=doc or name.replace("_", " "), data=data)


def _ragged(name: str, arrays: list[np.ndarray], doc: str) -> tuple[VectorData, VectorIndex]:
    """A ragged column from whole arrays: one data vector plus its end-offset index."""
    data = _vector(name, np.concatenate(arrays) if arrays else np.zeros(0), doc)
    ends = np.cumsum([len(a) for a in arrays]).astype(np.int64)
    return data, VectorIndex(name=f"{name}_index", data=ends, target=data)


def _add_electrodes(nwb: pynwb.NWBFile, channels: pd.DataFrame, groups: dict) -> None:
    """The electrodes table, built column-wise (row-wise add_electrode is ~100x slower)."""
    group = [groups[int(p)] for p in channels["probe_id"]]
    columns = [
        _vector("location", channels["location"].astype(str).tolist(), "structure acronym"),
        _vector("group", group, "electrode group of the channel"),
        _vector("group_name", [g.name for g in group], "name of the electrode group"),
        _vector("x", channels["anterior_posterior_ccf_coordinate"].to_numpy(float), "CCF AP (µm)"),
        _vector("y", channels["dorsal_ventral_ccf_coordinate"].to_numpy(float), "CCF DV (µm)"),
        _vector("z", channels["left_right_ccf_coordinate"].to_numpy(float), "CCF LR (µm)"),
        _vector("probe_id", channels["probe_id"].to_numpy(np.int64)),
        _vector("probe_channel_number", channels["probe_channel_number"].to_numpy(np.int64)),
        _vector(
            "probe_vertical_position",
            channels["probe_vertical_position"].to_numpy(np.int64),
            "distance from the probe tip (µm)",
        ),
        _vector(
            "probe_horizontal_position",
            channels["probe_horizontal_position"].to_numpy(np.int64),
            "horizontal position on the shank (µm)",
        ),
        _vector("valid_data", channels["valid_data"].to_numpy(bool)),
    ]
    nwb.electrodes = ElectrodesTable(id=channels["id"].to_numpy(np.int64), columns=columns)


class _Stream(AbstractDataChunkIterator):
    """hdmf's chunk-by-chunk writer fed from an iterator of 1-D arrays of known total length."""

    def __init__(self, name: str, total: int, arrays: Iterator[np.ndarray]) -> None:
        self.name, self.total, self.arrays, self.pos = name, total, arrays, 0

    def __iter__(self) -> _Stream:
        return self

    def __len__(self) -> int:  # hdmf sizes the ragged index by it
        return self.total

    def __next__(self) -> DataChunk:
        for data in self.arrays:
            if len(data) == 0:
                continue
            start, self.pos = self.pos, self.pos + len(data)
            if self.pos > self.total:
                raise ValueError(f"{self.name}: more than the {self.total} values announced")
            return DataChunk(data=np.asarray(data, np.float64), selection=np.s_[start : self.pos])
        if self.pos != self.total:
            raise ValueError(f"{self.name}: {self.pos} values, {self.total} announced")
        raise StopIteration

    def recommended_chunk_shape(self) -> tuple[int, ...]:
        return (min(max(self.total, 1), 2**18),)  # 2 MB chunks

    def recommended_data_shape(self) -> tuple[int, ...]:
        return (0,)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float64)

    @property
    def maxshape(self) -> tuple[int, ...]:
        return (self.total,)


def _streamed(
    name: str, counts: np.ndarray, arrays: Callable[[], Iterator[np.ndarray]], doc: str
) -> tuple[VectorIndex, VectorData]:
    """A ragged column whose data are written chunk by chunk (see SpikeStream).

    Returned index first: hdmf's DynamicTable forgets an iterator-backed column before it
    meets the column's index when the data come first.
    """
    total = int(np.sum(counts))
    data = _vector(name, _Stream(name, total, arrays()), doc)
    ends = np.cumsum(counts).astype(np.int64)
    return VectorIndex(name=f"{name}_index", data=ends, target=data), data


def _add_units(
    nwb: pynwb.NWBFile, units: pd.DataFrame, spike_times: list[np.ndarray] | SpikeStream
) -> None:
    waveforms = np.random.default_rng(0).normal(0, 1e-6, (len(units), 82))
    if isinstance(spike_times, SpikeStream):
        if len(spike_times.counts) != len(units):
            raise ValueError(f"{len(spike_times.counts)} spike counts for {len(units)} units")
        columns = [
            *_streamed("spike_times", spike_times.counts, spike_times.times, "spike times (s)")
        ]
        columns += [
            *_streamed(
                "spike_amplitudes",
                spike_times.counts,
                spike_times.amplitudes,
                "amplitude of each spike (V)",
            )
        ]
    else:
        amplitudes = [
            np.full(len(s), a * 1e-6) for s, a in zip(spike_times, units["amplitude"], strict=True)
        ]
        columns = [*_ragged("spike_times", spike_times, "spike times (s)")]
        columns += [*_ragged("spike_amplitudes", amplitudes, "amplitude of each spike (V)")]
    columns.append(_vector("waveform_mean", waveforms, "mean waveform on the peak channel"))
    for name in UNIT_COLUMNS:
        values = units[name].to_numpy()
        columns.append(
            _vector(name, values.astype(str).tolist() if values.dtype == object else values)
        )
    nwb.units = pynwb.misc.Units(
        name="units",
        id=units["id"].to_numpy(np.int64),
        columns=columns,
        description="sorted units",
    )


def _intervals(name: str, table: pd.DataFrame) -> pynwb.epoch.TimeIntervals:
    columns = []
    for col in table.columns:
        values = table[col].to_numpy()
        columns.append(
            _vector(col, values.astype(str).tolist() if values.dtype == object else values)
        )
    return pynwb.epoch.TimeIntervals(
        name=name,
        description=f"Presentation times of {name}",
        id=np.arange(len(table)),
        columns=columns,
    )


def _patch_file(path: Path, n_images: dict[str, int]) -> None:
    """Make a pynwb-4 file readable by AllenSDK's pynwb 2.8, and record image counts.

    pynwb 4 types the electrodes table `ElectrodesTable` (NWB core 2.11), unknown to
    AllenSDK's core 2.7; declaring it a plain hdmf-common DynamicTable reads the same in
    both (see allen-nwb-schema.md). Each stimulus's image count goes into an extra
    attribute of its presentations table, which pynwb and AllenSDK ignore.
    """
    with h5py.File(path, "r+") as f:
        f[ELECTRODES].attrs["neurodata_type"] = "DynamicTable"
        f[ELECTRODES].attrs["namespace"] = "hdmf-common"
        f.attrs["nwb_version"] = "2.7.0"
        for stimulus, n in n_images.items():
            f[f"intervals/{stimulus}_presentations"].attrs[N_IMAGES_ATTR] = np.int64(n)
