"""Errors for input data a user can fix (a missing file, a wrong topic, a cut-off recording).

``mcdepth-train`` prints these as one ``error: ...`` line and exits 2; anything else is a bug and
keeps its traceback. Each message names the input it is about.
"""
from __future__ import annotations


class DataError(ValueError):
    """Input data that cannot be used as given."""


class MissingData(DataError, FileNotFoundError):
    """A file or folder the data source needs does not exist."""
