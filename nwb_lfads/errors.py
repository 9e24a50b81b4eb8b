"""Errors and warnings raised by nwb-lfads: every exception class of the package lives here.

Every error a user can fix (a missing file, a column that does not exist, a bad option) is an
:class:`NwbLfadsError`. Its message names the file, the object and what to do; the CLI prints it
on one line and exits with code 2. Failures that are not the user's input (a diverged fit that
could not recover) are :class:`NwbLfadsRuntimeError` and exit with code 1. Warnings the library
emits (a fallback it took, not a failure) subclass :class:`UserWarning`.
"""

from __future__ import annotations


class NwbLfadsError(Exception):
    """Base class of user-fixable errors (CLI exit code 2)."""


class InputFileError(NwbLfadsError):
    """A source is missing, unreadable, not HDF5 or not NWB."""


class NwbContentError(NwbLfadsError):
    """The NWB file lacks what is needed (units table, spike times, trials table, ...)."""


class AlignmentError(NwbLfadsError):
    """Bad alignment: unknown ``align_to`` column, bad window or bin size."""


class SelectionError(NwbLfadsError):
    """A trial or unit selection that leaves nothing, or names something that does not exist."""


class ConfigError(NwbLfadsError):
    """A configuration value or override that is invalid."""


class ExternalInputError(NwbLfadsError):
    """An external input (``--external-input``) that names nothing or several things in a
    session, that does not cover a trial's window, or whose layout does not fit."""


class SessionMismatchError(NwbLfadsError):
    """Several sessions that cannot be trained together (bin size, window, duplicates)."""


class RunDirError(NwbLfadsError):
    """A run directory that is missing, incomplete or already holds another run."""


class DandiError(NwbLfadsError):
    """A DANDI identifier, version, asset or glob that cannot be resolved, or a failed download."""


class OutputDirError(NwbLfadsError):
    """The output folder of ``simulate`` is not empty (pass ``overwrite=True``) or not a folder."""


class MetricInputError(NwbLfadsError):
    """Arrays handed to a metric or baseline that have the wrong shape, values or selection."""


class StitchingInputError(NwbLfadsError):
    """Spike or condition arrays handed to the stitching initialisation that are malformed."""


class TargetsError(NwbLfadsError):
    """A targets file without the dataset asked for, or whose arrays do not match the session."""


class EvaluationError(NwbLfadsError):
    """A path that cannot be evaluated: neither a run directory nor an NWB file with LFADS rates."""


class ResultsFormatError(NwbLfadsError):
    """A results Dataset that lacks a variable, coordinate or attribute ``write_results`` needs."""


class RayMissingError(NwbLfadsError):
    """Ray (the optional ``sweep`` extra) is not installed."""


class ClusterError(NwbLfadsError):
    """A Ray cluster address that cannot be reached or joined."""


class NwbLfadsRuntimeError(RuntimeError):
    """A failure that is not the user's input (CLI exit code 1)."""


class TrainingDivergedError(NwbLfadsRuntimeError):
    """Training produced non-finite losses repeatedly and could not recover."""


class StitchingWarning(UserWarning):
    """The stitching initialisation fell back (no shared conditions) or padded components."""
