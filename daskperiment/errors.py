"""Exceptions raised by daskperiment.

Every error says what was wrong and how to fix it; none of them is raised after
a trial was stored half-way.
"""

from __future__ import annotations


class DaskperimentError(Exception):
    """Base class of all errors raised by daskperiment."""


class TrialIDNotFoundError(DaskperimentError, KeyError, ValueError):
    """A trial id is unknown, or there is no running trial to take one from.

    A ``ValueError`` as in daskperiment 0.5, and a ``KeyError``.
    """

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ParameterUndefinedError(DaskperimentError, ValueError):
    """A parameter has no value (and no default) when a trial starts."""


class ParameterNotDefinedError(DaskperimentError, KeyError, ValueError):
    """A name was given that is not a parameter of the experiment (not declared).

    A ``ValueError`` as in daskperiment 0.5, and a ``KeyError``.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidExperimentIDError(DaskperimentError, ValueError):
    """An experiment id cannot be used to name stored data."""


class BackendError(DaskperimentError):
    """A backend specification is invalid or its store cannot be used."""


class BatchSpooledError(BackendError):
    """A server could not be reached: the batch is kept in the local spool and re-sent later (nothing is lost)."""


class BackendURIError(BackendError, ValueError):
    """A ``redis://`` or ``mongodb://`` URI is malformed (a ``ValueError`` as in daskperiment 0.5)."""


class ExperimentNotFoundError(BackendError):
    """A store holds no experiment of that id (and was asked not to create one)."""


class PersistError(DaskperimentError, TypeError):
    """The output of an ``@ex.persist`` step cannot be serialized."""


class MetricError(DaskperimentError, ValueError):
    """A metric was saved with a bad key, epoch or value, or is unknown."""


class PersistedValueNotFoundError(DaskperimentError, KeyError):
    """No value was persisted for a step in a trial."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class UntrackedComputeError(DaskperimentError, RuntimeError):
    """An ``@ex.result`` step was computed in a way that records no trial."""


class SweepError(DaskperimentError, ValueError):
    """A sweep was asked for with a malformed grid, list or distribution."""


class ParameterElsewhereError(UntrackedComputeError):
    """A graph of steps was computed by dask in a process that does not hold the parameter values."""


class OptimizeError(DaskperimentError, ValueError):
    """An adaptive search was asked for with a malformed space, or its results are not numbers."""


class LockedTrialError(DaskperimentError, RuntimeError):
    """``ex.trial_id`` was read inside a running step, where the last trial id is not settled."""


class ExperimentReinitializedError(DaskperimentError, RuntimeError):
    """A step or trial of an experiment's definition that ``Experiment(id, ...)`` has replaced since."""


class CacheError(DaskperimentError, RuntimeError):
    """A cached step output could not be read back."""


class ArtifactError(DaskperimentError):
    """A file could not be kept as an artifact, or an artifact could not be read back."""


class SigningKeyError(DaskperimentError, RuntimeError):
    """The key that signs pickled values is malformed, or its file cannot be read or made."""


class UnreadableValueError(DaskperimentError, ValueError):
    """A stored value cannot be loaded: a pickle not signed with this process's key, or of a class not importable here.

    Raised where the value itself is asked for (``get_persisted``, a cached
    step); histories show such values as :class:`daskperiment.serialization.UnreadableValue`.
    """


class UnreadableCacheError(CacheError, UnreadableValueError):
    """A cached step output that may not be loaded here (see :class:`UnreadableValueError`)."""


class AnnotationError(DaskperimentError, ValueError):
    """A trial's note or tag holds text that cannot be kept (too long, control characters, ...)."""


class TransferError(DaskperimentError):
    """An experiment cannot be exported, imported or copied: a malformed file, a target holding trials, ..."""


class TrialRunningError(DaskperimentError, RuntimeError):
    """A trial that is still running was asked to be deleted, or its experiment to be replaced by an import."""
