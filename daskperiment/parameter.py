"""Parameters: placeholders in a step graph, filled with values per trial."""

from __future__ import annotations

import threading
from typing import Any, Iterable, Mapping

from dask.delayed import Delayed, delayed

from daskperiment import serialization
from daskperiment.context import process_identity
from daskperiment.errors import ParameterElsewhereError, ParameterNotDefinedError, ParameterUndefinedError
from daskperiment.history import HISTORY_COLUMNS

PARAMETER_KEY_PREFIX = "daskperiment-parameter"


class _Undefined:
    """Marker of a parameter without value nor default."""

    _instance: "_Undefined | None" = None

    def __new__(cls) -> "_Undefined":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "Undefined"

    def __reduce__(self) -> str:
        return "Undefined"


Undefined = _Undefined()


def parameter_key_prefix(experiment_id: str) -> str:
    """Prefix of the graph keys of the parameters of ``experiment_id``."""
    return f"{PARAMETER_KEY_PREFIX}-{experiment_id}-"


_parameter_sets: dict[str, "ParameterSet"] = {}


class UnavailableParameter:
    """What a parameter's placeholder gives in a process that does not hold its values.

    A step computed on its own (a dry run) takes the current parameter values,
    which live in the process that set them; a dry run sent to another process
    (``scheduler="processes"``, a cluster) gets this instead, and the step
    raises a clear error (:func:`daskperiment.execution.dry_run`).
    """

    __slots__ = ("experiment_id", "name")

    def __init__(self, experiment_id: str, name: str) -> None:
        self.experiment_id = experiment_id
        self.name = name

    def error(self) -> ParameterElsewhereError:
        """The error a step given this placeholder raises."""
        return ParameterElsewhereError(
            f"parameter {self.name!r} of experiment {self.experiment_id!r} has no value in this "
            "process: dask computed the steps' own graph (dask.compute, client.compute, persist) "
            "in another process, which records no trial and cannot see the values set in yours. "
            "Run a trial with result.compute(), ex.run(result, ...), ex.submit(...) or "
            "ex.sweep(...); to try an intermediate step alone, compute it with "
            "scheduler='threads' or 'sync'"
        )

    def __repr__(self) -> str:
        return f"UnavailableParameter({self.name!r})"


def _value_outside_trial(experiment_id: str, name: str, origin: str) -> Any:
    """Task of a parameter's placeholder: its current value when a graph is computed outside a trial.

    Only the process that defined the parameter (``origin``) knows its
    values; elsewhere (even where the script was imported too) it gives an
    :class:`UnavailableParameter`, never a default that may not be the value.
    """
    parameters = _parameter_sets.get(experiment_id)
    if parameters is None or origin != process_identity():
        return UnavailableParameter(experiment_id, name)
    return parameters.resolve([name])[name]


class Parameter(Delayed):
    """A named parameter of an experiment, usable as an argument of any step.

    It is a ``dask.delayed`` object: passed to a step (or to any delayed
    function, or combined with operators such as ``a * 2``) it adds a
    placeholder to the graph, which each trial fills with the parameter's value.
    Create parameters with :meth:`daskperiment.Experiment.parameter`.
    """

    __slots__ = ("_parameter_set", "_name")

    def __init__(self, parameters: "ParameterSet", name: str) -> None:
        key = parameter_key_prefix(parameters.experiment_id) + name
        placeholder = delayed(_value_outside_trial, pure=True)(
            parameters.experiment_id, name, process_identity(), dask_key_name=key
        )
        super().__init__(key, placeholder.dask)
        self._parameter_set = parameters
        self._name = name

    @property
    def name(self) -> str:
        """Name of the parameter."""
        return self._name

    @property
    def experiment_id(self) -> str:
        """Id of the experiment the parameter belongs to."""
        return self._parameter_set.experiment_id

    @property
    def value(self) -> Any:
        """The value a trial started now would use (``Undefined`` if none)."""
        return self._parameter_set.current()[self._name]

    def __repr__(self) -> str:
        value = self.value
        if value is Undefined:
            return f"Parameter({self._name}: Undefined)"
        return f"Parameter({self._name}: {value!r}{type(value)})"


class ParameterSet:
    """The parameters of one experiment: definitions, defaults and current values."""

    def __init__(self, experiment_id: str) -> None:
        self.experiment_id = experiment_id
        self._lock = threading.Lock()
        self._parameters: dict[str, Parameter] = {}
        self._defaults: dict[str, Any] = {}
        self._values: dict[str, Any] = {}
        _parameter_sets[experiment_id] = self

    def define(self, name: str, default: Any = None) -> Parameter:
        """Define (or fetch) parameter ``name``; a ``default`` other than None is (re)set."""
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(
                f"invalid parameter name {name!r}: use a Python identifier such as 'learning_rate', "
                "so it can be set with ex.set_parameters(name=value) and name=value on the command line"
            )
        if name in HISTORY_COLUMNS:
            raise ValueError(
                f"invalid parameter name {name!r}: the history has a column {name!r} of its own; "
                f"rename the parameter, e.g. '{name.lower()}_value' (taken: "
                f"{', '.join(repr(c) for c in HISTORY_COLUMNS if c.isidentifier())})"
            )
        with self._lock:
            if default is not None:
                _check_serializable(name, default)
                self._defaults[name] = default
            parameter = self._parameters.get(name)
            if parameter is None:
                parameter = self._parameters[name] = Parameter(self, name)
            return parameter

    def set(self, values: dict[str, Any]) -> None:
        """Set the values of defined parameters; unknown names change nothing and raise."""
        self._check(values)
        with self._lock:
            self._values.update(values)

    def _check(self, values: Mapping[str, Any]) -> None:
        """Raise unless every name is a defined parameter and every value can be recorded."""
        unknown = [name for name in values if name not in self._parameters]
        if unknown:
            raise ParameterNotDefinedError(
                f"Parameter is not declared: {', '.join(unknown)}. {_names(unknown)} "
                f"{'is' if len(unknown) == 1 else 'are'} not defined in experiment "
                f"{self.experiment_id!r}: define "
                f"{'it' if len(unknown) == 1 else 'them'} first with ex.parameter({unknown[0]!r}); "
                f"defined parameters: {', '.join(self._parameters) or 'none'}"
            )
        for name, value in values.items():
            _check_serializable(name, value)

    def current(self) -> dict[str, Any]:
        """Every defined parameter's value: set value, else default, else ``Undefined``."""
        with self._lock:
            return {
                name: self._values.get(name, self._defaults.get(name, Undefined))
                for name in self._parameters
            }

    def resolve(self, names: Iterable[str], overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The values a trial records: every parameter that has one, in definition order.

        ``names`` (the parameters the trial's steps use) and the ``overrides``'
        names must have a value; the other parameters are included when they
        have one (a parameter no step uses, e.g. who ran the trial, is
        recorded as in daskperiment 0.5). ``overrides`` (values given for one
        trial) take precedence over the values set with :meth:`set` and the
        defaults, and change neither.

        Raises
        ------
        ParameterNotDefinedError
            When an override names no parameter.
        ParameterUndefinedError
            When one of ``names`` has no value.
        """
        if overrides:
            self._check(overrides)
            values = {name: overrides.get(name, value) for name, value in self.current().items()}
        else:
            values = self.current()
        missing = sorted(
            name for name in {*names, *(overrides or ())} if values.get(name, Undefined) is Undefined
        )
        if missing:
            assignments = ", ".join(f"{name}=..." for name in missing)
            raise ParameterUndefinedError(
                f"Parameters are not defined: {missing}. {_names(missing)} "
                f"{'has' if len(missing) == 1 else 'have'} no value in experiment "
                f"{self.experiment_id!r}: call "
                f"ex.set_parameters({assignments}) before computing, or give a default with "
                f"ex.parameter({missing[0]!r}, default=...)"
            )
        return {name: value for name, value in values.items() if value is not Undefined}

    def name_of(self, value: object) -> str | None:
        """Name of the parameter ``value`` is (a Parameter, or its graph key), else None."""
        if isinstance(value, Parameter):
            return value.name if value.experiment_id == self.experiment_id else None
        prefix = parameter_key_prefix(self.experiment_id)
        if isinstance(value, str) and value.startswith(prefix) and value[len(prefix):] in self._parameters:
            return value[len(prefix):]
        return None


def _names(names: list[str]) -> str:
    quoted = ", ".join(repr(name) for name in names)
    return f"parameter {quoted}" if len(names) == 1 else f"parameters {quoted}"


_ALWAYS_SERIALIZABLE = frozenset({int, float, str, bool, type(None)})
"""Types whose every value can be recorded (no need to serialize one to know)."""


def _check_serializable(name: str, value: Any) -> None:
    if type(value) in _ALWAYS_SERIALIZABLE:
        return
    try:
        serialization.dumps(value)
    except TypeError as exc:
        raise TypeError(
            f"the value of parameter {name!r} cannot be recorded: {exc}. "
            "Use a value that pickle or cloudpickle can serialize."
        ) from None
