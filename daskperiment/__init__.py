"""daskperiment: reproducible machine-learning experiments on Dask."""

from daskperiment.errors import (
    BackendError,
    DaskperimentError,
    InvalidExperimentIDError,
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
    "BackendError",
    "DaskperimentError",
    "Experiment",
    "InvalidExperimentIDError",
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
