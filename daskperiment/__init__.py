"""daskperiment: reproducible machine-learning experiments on Dask."""

from daskperiment.artifactstore import ArtifactStore
from daskperiment.errors import (
    ArtifactError,
    BackendError,
    CacheError,
    DaskperimentError,
    ExperimentReinitializedError,
    InvalidExperimentIDError,
    LockedTrialError,
    MetricError,
    ParameterNotDefinedError,
    ParameterUndefinedError,
    PersistError,
    PersistedValueNotFoundError,
    TrialIDNotFoundError,
)
from daskperiment.experiment import Experiment
from daskperiment.parameter import Parameter, Undefined

__version__ = "0.6.0"

__all__ = [
    "ArtifactError",
    "ArtifactStore",
    "BackendError",
    "CacheError",
    "DaskperimentError",
    "Experiment",
    "ExperimentReinitializedError",
    "InvalidExperimentIDError",
    "LockedTrialError",
    "MetricError",
    "Parameter",
    "ParameterNotDefinedError",
    "ParameterUndefinedError",
    "PersistError",
    "PersistedValueNotFoundError",
    "TrialIDNotFoundError",
    "Undefined",
    "__version__",
]
