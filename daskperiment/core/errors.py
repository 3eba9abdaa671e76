"""The exception classes at daskperiment 0.5's documented path (``daskperiment.core.errors``).

They are the classes of :mod:`daskperiment.errors`, re-exported.
"""

from daskperiment.errors import (
    ArtifactError,
    BackendError,
    BackendURIError,
    CacheError,
    DaskperimentError,
    ExperimentNotFoundError,
    ExperimentReinitializedError,
    InvalidExperimentIDError,
    LockedTrialError,
    MetricError,
    OptimizeError,
    ParameterElsewhereError,
    ParameterNotDefinedError,
    ParameterUndefinedError,
    PersistedValueNotFoundError,
    PersistError,
    SweepError,
    TrialIDNotFoundError,
    UntrackedComputeError,
)

__all__ = [
    "ArtifactError",
    "BackendError",
    "BackendURIError",
    "CacheError",
    "DaskperimentError",
    "ExperimentNotFoundError",
    "ExperimentReinitializedError",
    "InvalidExperimentIDError",
    "LockedTrialError",
    "MetricError",
    "OptimizeError",
    "ParameterElsewhereError",
    "ParameterNotDefinedError",
    "ParameterUndefinedError",
    "PersistError",
    "PersistedValueNotFoundError",
    "SweepError",
    "TrialIDNotFoundError",
    "UntrackedComputeError",
]
