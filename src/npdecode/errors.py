"""Errors a user can act on: each message names the session, file or key at fault."""

from __future__ import annotations


class NpdecodeError(Exception):
    """Base class for expected, user-facing failures (bad params, bad data)."""


class ParamsError(NpdecodeError, ValueError):
    """params.yaml has an unknown key, a wrong type or an out-of-range value."""


class DataError(NpdecodeError, ValueError):
    """An input file is missing, truncated or inconsistent."""


class CorruptError(DataError):
    """An artifact's bytes fail their check (checksum, CRC, content hash): restore or rebuild it."""
