"""The Experiment: parameters, steps and the record of every trial."""

from __future__ import annotations

import copy
import logging
import numbers
import os
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Mapping, Sequence

from daskperiment import collector, deletion, serialization
from daskperiment.annotations import check_note, check_tag_count, check_tags
from daskperiment.artifactstore import ArtifactStore, artifact_location
from daskperiment.artifacts import artifact_files, artifact_input, local_artifact
from daskperiment.backend import DEFAULT_CACHE_DIRECTORY, Backend, LocalBackend, open_backend
from daskperiment.backend.codec import bulk_decoding
from daskperiment.capture import StepArtifacts
from daskperiment.codecontext import CodeContext
from daskperiment.codefiles import trial_code_file
from daskperiment.context import active_step, current_context
from daskperiment.errors import (
    ArtifactError,
    BackendError,
    InvalidExperimentIDError,
    LockedTrialError,
    MetricError,
    PersistedValueNotFoundError,
    TrialIDNotFoundError,
    TrialRunningError,
    UnreadableValueError,
)
from daskperiment.history import artifact_frame, cache_frame, history_frame, metric_frame
from daskperiment.metricpoints import checked_point, clock, is_plain
from daskperiment.metrictable import metric_points_frame
from daskperiment.options import checked_flag
from daskperiment.parameter import Parameter, ParameterSet
from daskperiment.records import Annotation, AnnotationEdit, ArtifactRecord, MetricSeries, TrialRecord
from daskperiment.script import script_logging, script_mode_default
from daskperiment.seeding import validate_seed
from daskperiment.envblob import load_environment
from daskperiment.step import Step, check_cache_options
from daskperiment.status import RUNNING
from daskperiment.stepcache import StepCache
from daskperiment.tracker import Tracker, TrialFuture
from daskperiment.trial import TrialResult

if TYPE_CHECKING:
    import optuna
    import pandas as pd
    from dask.delayed import Delayed

logger = logging.getLogger(__name__)

_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def validate_experiment_id(experiment_id: object) -> str:
    """Return ``experiment_id`` if it can name stored data, else raise a clear error."""
    if not isinstance(experiment_id, str) or not _ID_PATTERN.fullmatch(experiment_id):
        raise InvalidExperimentIDError(
            "Experiment ID must be a str of 1 to 128 characters among letters, digits, '_', '-' "
            f"and '.', starting with a letter or digit: invalid experiment id {experiment_id!r} "
            "(no spaces or path separators), e.g. 'mnist_cnn-v2'"
        )
    return experiment_id


class Experiment:
    """An experiment: parameters and steps whose every computation is a recorded trial.

    Parameters
    ----------
    id : str
        Name of the experiment; letters, digits, ``_``, ``-`` and ``.``. Within
        a process the same id returns the same instance, re-initialised as in
        daskperiment 0.5: it takes the backend, seed and artifact location
        given now, and its parameters and steps start empty (decorate the
        steps again; steps and trial graphs of the replaced definition raise
        :class:`~daskperiment.errors.ExperimentReinitializedError`).
    backend : {"local"}, pathlib.Path, str, client object or Backend, optional
        Where trials are stored. ``"local"`` is the embedded store in
        ``daskperiment_cache/<id>/``; a path stores in that folder; a
        ``redis://`` or ``mongodb://`` URI (or a ``redis.ConnectionPool``, a
        ``pymongo`` database) stores on that server. By default
        ``$DASKPERIMENT_BACKEND`` if set, else ``"local"``. An existing
        store's history is loaded.
    seed : int, optional
        Default seed of the trials (see :meth:`TrialResult.compute`).
    artifacts : str, optional
        Where the files trials keep (and large cached step outputs) are
        stored: an fsspec URL such as ``"s3://bucket/prefix"`` or a folder. By
        default ``$DASKPERIMENT_ARTIFACTS`` if set, else the ``artifacts``
        folder of a local store, else the user's data folder.
    script_mode : bool, optional
        Whether calling an ``@ex.result`` step in a script run as a file runs
        a trial at once, with parameters from the command line (see
        :mod:`daskperiment.script`). False makes a script behave as a notebook
        session: the call builds a graph and ``.compute()`` runs the trial. By
        default True unless ``$DASKPERIMENT_SCRIPT_MODE`` is ``0``.

    Examples
    --------
    >>> ex = Experiment("demo")
    >>> a = ex.parameter("a")
    >>> @ex.result
    ... def double(a):
    ...     return 2 * a
    >>> ex.set_parameters(a=2)
    >>> double(a).compute(seed=1)
    4
    """

    _instances: ClassVar[dict[str, "Experiment"]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    id: str

    def __new__(
        cls, id: str, backend: str | os.PathLike[str] | Backend | None = None, seed: int | None = None,
        artifacts: str | os.PathLike[str] | None = None, script_mode: bool | None = None,
    ) -> "Experiment":
        experiment = cls._get_or_open(validate_experiment_id(id), backend, seed, artifacts, user=True)
        if script_mode is not None:
            experiment.script_mode = checked_flag("script_mode", script_mode)
        return experiment

    @classmethod
    def _get_or_open(
        cls, experiment_id: str, backend: str | os.PathLike[str] | Backend | None, seed: int | None,
        artifacts: str | os.PathLike[str] | ArtifactStore | None, *, user: bool,
    ) -> "Experiment":
        """The experiment of this process with that id, or a newly opened one.

        ``user`` is a call of ``Experiment(...)``: it re-initialises an open
        experiment and starts capturing the environment. Otherwise (a dask
        worker unpickling a step's experiment) the open one is returned as it is.
        """
        seed = validate_seed(seed)
        store = open_backend(backend, experiment_id)
        given = artifacts is not None
        if not isinstance(artifacts, ArtifactStore):
            location = artifact_location(
                None if artifacts is None else os.fspath(artifacts), store.artifact_root(), experiment_id
            )
            artifacts = ArtifactStore(location)
        with cls._instances_lock:
            existing = cls._instances.get(experiment_id)
            if existing is not None and user:
                existing._reinitialise(store, seed, artifacts, opened=not isinstance(backend, Backend))
            elif existing is not None:
                if store != existing.backend:
                    raise BackendError(
                        f"experiment {experiment_id!r} is already open in this process with "
                        f"{existing.backend!r}, not {store!r}: use another id, or the same backend"
                    )
                if given and artifacts.url != existing.artifacts.url:
                    raise BackendError(
                        f"experiment {experiment_id!r} is already open in this process with its "
                        f"artifacts in {existing.artifacts.url!r}, not {artifacts.url!r}: use "
                        "another id, or the same artifact location"
                    )
                if seed is not None:
                    existing.seed = seed
                return existing
            else:
                existing = super().__new__(cls)
                existing._open(experiment_id, store, seed, artifacts, announce=user)
                cls._instances[experiment_id] = existing
        if user:
            collector.environment_future()  # capture starts now, in the background
        return existing

    def _reinitialise(self, store: Backend, seed: int | None, artifacts: ArtifactStore, *, opened: bool) -> None:
        """Start this experiment's definition afresh on ``store``, as 0.5 did on every ``Experiment(id, ...)``.

        Steps decorated before keep the previous tracker, which refuses new
        trials from now on: none of them records into a store the user
        switched away from, nor with parameters and code that were reset.
        ``opened``: ``store`` was opened for this call (closed when it is the
        store this experiment uses already).
        """
        previous = self._backend
        switched = store != previous
        self._tracker.retire(
            f"experiment {self.id!r} was re-initialised by a later Experiment({self.id!r}, ...) call"
            f"{f' with backend {store!r} (was {previous!r})' if switched else ''}, which resets its "
            "parameters and steps: define the parameters and decorate the steps again (re-run their "
            "cells), then build the trial from them"
        )
        if opened and not switched and store is not previous:
            store.close()  # the same store, opened again: keep the open one
        self._open(self.id, store if switched else previous, seed, artifacts, announce=True)
        if switched:
            logger.warning(
                "Experiment %r re-initialised with backend %r (was %r): its parameters and steps "
                "were reset; steps decorated before raise ExperimentReinitializedError",
                self.id, store, previous,
            )
        else:
            logger.info(
                "Experiment %r re-initialised: its parameters and steps were reset; steps "
                "decorated before raise ExperimentReinitializedError", self.id,
            )

    def __reduce__(self) -> tuple[Any, ...]:
        # Steps that call ex.save_metric carry the experiment to dask workers.
        return _experiment_in_worker, (self.id, self._backend, self.seed, self.artifacts)

    def _open(
        self, experiment_id: str, backend: Backend, seed: int | None, artifacts: ArtifactStore,
        *, announce: bool,
    ) -> None:
        """Set the experiment up; ``announce`` logs what the store holds (not in dask workers,
        which never read the store)."""
        self.id = experiment_id
        self._backend = backend
        self.artifacts = artifacts
        self.script_mode = script_mode_default()
        self._parameters = ParameterSet(experiment_id)
        cache = StepCache(backend, artifacts.subfolder("cache"))
        self._tracker = Tracker(
            experiment_id, backend, self._parameters, CodeContext(), cache, artifacts, seed
        )
        if not announce:
            return
        last = backend.last_trial_id()
        if last:
            logger.info("Loaded experiment %r with %d trial(s) from %r", experiment_id, last, backend)
        else:
            logger.info("Initialized new experiment: %r", self)

    @property
    def seed(self) -> int | None:
        """Default seed of the trials (None: each trial gets a generated one)."""
        return self._tracker.seed

    @seed.setter
    def seed(self, seed: int | None) -> None:
        self._tracker.seed = validate_seed(seed)

    def __repr__(self) -> str:
        return (
            f"Experiment(id: {self.id}, trial_id: {self._backend.last_trial_id()}, "
            f"backend: {self._backend!r})"
        )

    def _repr_html_(self) -> str:
        """HTML summary for Jupyter: id, store, last trial id, parameters and the last 5 trials."""
        from html import escape

        last = self._backend.last_trial_id()
        recent = self._backend.load_trials(list(range(max(1, last - 4), last + 1))) if last else []
        parameters = "".join(
            f"<tr><td>{escape(name)}</td><td>{escape(repr(value))}</td></tr>"
            for name, value in self.get_parameters().items()
        ) or "<tr><td colspan='2'>(none)</td></tr>"
        trials = history_frame(recent).to_html(escape=True) if recent else "<p>No trial yet.</p>"
        return (
            f"<div><p><b>Experiment</b> {escape(self.id)} &mdash; store {escape(repr(self._backend))}"
            f" &mdash; last trial id {last}</p>"
            f"<table><tr><th>Parameter</th><th>Current value</th></tr>{parameters}</table>"
            f"<p>Last trials</p>{trials}</div>"
        )

    # -- definition ---------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        """The store of this experiment's trials."""
        return self._backend

    def parameter(self, name: str, default: Any = None) -> Parameter:
        """Define a parameter (or return the existing one).

        Parameters
        ----------
        name : str
            A Python identifier.
        default : Any, optional
            Value used by trials when :meth:`set_parameters` gave none.

        Returns
        -------
        Parameter
            A placeholder to pass to steps; each trial fills it.

        Raises
        ------
        ValueError
            For a name that is not an identifier, or that is the title of a
            column of the history (``Result``, ``Success``, ``Seed``, ...).
        """
        return self._parameters.define(name, default)

    def set_parameters(self, **values: Any) -> None:
        """Set parameter values for the trials computed from now on.

        Raises
        ------
        ParameterNotDefinedError
            When a name is not a parameter of this experiment (nothing is set).
        """
        self._parameters.set(values)

    def get_parameters(self, trial_id: int | None = None) -> dict[str, Any]:
        """Parameter values: the current ones, or those trial ``trial_id`` ran with."""
        if trial_id is None:
            return self._parameters.current()
        trial_id = self._check_trial_id(trial_id)
        start = self._backend.load_starts([trial_id]).get(trial_id)  # running (or killed)
        return dict(start.parameters if start is not None else self._trial(trial_id).parameters)

    def __call__(self, func: Callable | None = None, *, cache: bool = False, seeded: bool = False) -> Any:
        """Decorate a function as a step (``@ex``, ``@ex()`` or ``@ex(cache=True)``).

        Parameters
        ----------
        func : callable
            The step's function.
        cache : bool, default False
            Keep the step's output in the step cache and, when a later trial
            calls it with the same code (its own and its upstream steps') and
            the same inputs, load the output instead of computing it.
        seeded : bool, default False
            For a cached step that draws random numbers from ``random`` or
            ``numpy.random``: the trial's seed is then part of what must match.
        """
        return self._decorate(func, persist=False, result=False, cache=cache, seeded=seeded)

    def persist(self, func: Callable | None = None, *, cache: bool = False, seeded: bool = False) -> Any:
        """Decorate a step whose output is stored per trial (see :meth:`get_persisted`).

        ``cache`` and ``seeded`` are as for ``@ex(...)``.
        """
        return self._decorate(func, persist=True, result=False, cache=cache, seeded=seeded)

    def result(self, func: Callable | None = None, *, cache: bool = False, seeded: bool = False) -> Any:
        """Decorate the final step: computing its output runs and records a trial.

        ``cache`` and ``seeded`` are as for ``@ex(...)``: a cached result step
        whose inputs match records a trial whose result is loaded.
        """
        return self._decorate(func, persist=False, result=True, cache=cache, seeded=seeded)

    def _decorate(
        self, func: Callable | None, *, persist: bool, result: bool, cache: bool, seeded: bool
    ) -> Any:
        options = check_cache_options(cache, seeded)

        def decorate(function: Callable) -> Step:
            return Step(self, self._tracker, function, persist=persist, result=result, **options)

        return decorate if func is None else decorate(func)

    # -- trials -------------------------------------------------------------------
    @property
    def trial_id(self) -> int:
        """Id of the last recorded trial (0 before the first).

        Raises
        ------
        LockedTrialError
            When read inside a running step of this experiment, where other
            trials may be recorded meanwhile: use :attr:`current_trial_id` there.
        """
        recorder = active_step.get(None)
        context = recorder.context if recorder is not None else None
        if context is not None and context.experiment_id == self.id:
            raise LockedTrialError(
                "Trial ID cannot be referred during a trial execution: ex.trial_id is the last "
                "recorded trial, which is not settled while trials run; inside a step use "
                "ex.current_trial_id for the running trial's id"
            )
        return self._backend.last_trial_id()

    @property
    def current_trial_id(self) -> int:
        """Id of the running trial; only available inside a step while it runs.

        Raises
        ------
        TrialIDNotFoundError
            Outside a running step of this experiment.
        """
        return current_context(self.id, "current_trial_id").trial_id

    def run(
        self,
        result: TrialResult,
        parameters: Mapping[str, Any] | None = None,
        /,
        *,
        seed: int | None = None,
        scheduler: Any = None,
        cache: bool = True,
        **values: Any,
    ) -> Any:
        """Run one trial of ``result`` with the given parameter values; record it.

        The values apply to this trial only: those set with
        :meth:`set_parameters` (and the defaults) are used for the others and
        are not changed, so threads can run trials with different values at once.

        Parameters
        ----------
        result : TrialResult
            The output of an ``@ex.result`` step.
        parameters : mapping, optional
            Parameter values by name (for names that are not Python
            identifiers, or clash with ``seed``/``scheduler``).
        seed : int, optional
            Seed of the trial; defaults to the experiment's, else a generated one.
        scheduler : optional
            As for :func:`dask.compute`: ``"sync"``, ``"threads"``,
            ``"processes"`` or a ``dask.distributed`` client; by default the
            active client if any, else threads.
        cache : bool, default True
            Load cached steps (``@ex(cache=True)``) from the step cache when
            their code and inputs match; False computes them again and
            replaces their entries.
        **values
            Parameter values by name.

        Returns
        -------
        Any
            The trial's result.

        Raises
        ------
        ParameterNotDefinedError, ParameterUndefinedError
            For an unknown name, or a parameter left without value (nothing runs).
        Exception
            Whatever a step raised: the trial is recorded as failed first.
        """
        call = self._result_call(result, "run")
        return self._tracker.run(
            call, {**(parameters or {}), **values}, seed, scheduler, {}, cache=cache
        )

    def submit(
        self,
        result: TrialResult,
        parameters: Mapping[str, Any] | None = None,
        /,
        *,
        seed: int | None = None,
        scheduler: Any = None,
        cache: bool = True,
        **values: Any,
    ) -> TrialFuture:
        """Start one trial of ``result`` without waiting for it (see :meth:`run`).

        Returns
        -------
        TrialFuture
            A ``concurrent.futures.Future`` of the trial's result (its
            ``trial_id`` is known at once); the trial is recorded before it
            completes. On a ``dask.distributed`` cluster the trial runs there;
            otherwise in a background thread of this process, on the local
            scheduler. Many trials can be in flight at once.
        """
        call = self._result_call(result, "submit")
        return self._tracker.submit(
            call, {**(parameters or {}), **values}, seed, scheduler, {}, cache=cache
        )

    def sweep(self, result: TrialResult, grid: Mapping[str, Any] | None = None, **options: Any) -> pd.DataFrame:
        """Run many trials of ``result`` as one dask graph; shared steps run once.

        Parameters
        ----------
        result : TrialResult
            The output of an ``@ex.result`` step.
        grid : mapping of str to list, optional
            Every combination of these values (a full grid).
        **options
            ``trials`` (a list of parameter dicts), ``random`` (a mapping of
            names to ``scipy.stats`` frozen distributions or lists) with ``n``
            and ``sample_seed``; ``seed``, ``per_trial_seeds``,
            ``max_in_flight``, ``scheduler``, ``progress``, ``name``,
            ``share`` and ``cache``: see :func:`daskperiment.sweep.run_sweep`.

        Returns
        -------
        pandas.DataFrame
            The sweep's rows of the history (with its ``Sweep`` column).
        """
        from daskperiment.sweep import run_sweep

        call = self._result_call(result, "sweep")
        return run_sweep(self._tracker, call, grid=grid, **options)

    def optimize(
        self,
        result: TrialResult,
        space: Mapping[str, Any] | Callable[..., Mapping[str, Any]],
        n_trials: int,
        *,
        direction: str | None = None,
        study: optuna.Study | None = None,
        n_parallel: int = 2,
        seed: int | None = None,
        scheduler: Any = None,
        name: str | None = None,
        progress: bool = False,
    ) -> optuna.Study:
        """Search the parameters of ``result`` with Optuna (``pip install 'daskperiment[optuna]'``).

        Up to ``n_parallel`` trials run at once (see :meth:`submit`); each is
        recorded with the search's sweep id, and its result (a real number) is
        told to the study; a failed trial is told as failed.

        Parameters
        ----------
        result : TrialResult
            The output of an ``@ex.result`` step.
        space : dict or callable
            Parameter names to Optuna distributions, or a function of an
            ``optuna.Trial`` returning the values (``trial.suggest_*``).
        n_trials : int
            Number of trials.
        direction, study, n_parallel, seed, scheduler, name, progress
            See :func:`daskperiment.optimize.run_optimize`.

        Returns
        -------
        optuna.Study
            The study; ``study.best_trial.user_attrs["daskperiment_trial_id"]``
            is the id of the best recorded trial.
        """
        from daskperiment.optimize import run_optimize

        return run_optimize(
            self, self._tracker, self._result_call(result, "optimize"), space, n_trials,
            direction=direction, study=study, n_parallel=n_parallel, seed=seed, scheduler=scheduler,
            name=name, progress=progress,
        )

    def set_direction(self, direction: str) -> None:
        """Store whether lower (``"minimize"``) or higher (``"maximize"``) results are better.

        The direction is kept with the experiment: the dashboard's best trial,
        later searches (:meth:`optimize`) and ``daskperiment direction ID`` read it.

        Parameters
        ----------
        direction : {"minimize", "maximize"}
            ``"minimize"`` for a loss or an error, ``"maximize"`` for an accuracy or a score.

        Raises
        ------
        ValueError
            For any other value (nothing is stored).
        """
        from daskperiment.direction import save_direction

        save_direction(self._backend, direction)

    def get_direction(self) -> str | None:
        """The stored direction of the results.

        Returns
        -------
        str or None
            ``"minimize"`` or ``"maximize"``; None if it was never set (the
            dashboard then assumes ``"minimize"``).
        """
        from daskperiment.direction import load_direction

        return load_direction(self._backend)

    def _result_call(self, result: object, what: str) -> Any:
        if not isinstance(result, TrialResult) or result.experiment_id != self.id:
            raise TypeError(
                f"ex.{what}() takes the output of an @ex.result step of experiment {self.id!r} "
                f"(e.g. ex.{what}(score(prepare(a))), ...), not {type(result).__name__} {result!r}"
            )
        result.check_active()
        return result.call

    def _trial(self, trial_id: int) -> TrialRecord:
        trial_id = self._check_trial_id(trial_id)
        records = self._backend.load_trials([trial_id])
        if not records:
            self._raise_unknown_trial(trial_id)
        return records[0]

    def _check_trial_id(self, trial_id: object) -> int:
        if isinstance(trial_id, bool) or not isinstance(trial_id, numbers.Integral):
            raise TrialIDNotFoundError(
                f"Unable to find trial id: {trial_id!r}. invalid trial id {trial_id!r}: trial ids "
                f"are positive integers (experiment {self.id!r} has trials up to "
                f"{self._backend.last_trial_id()})"
            )
        return int(trial_id)

    def _raise_unknown_trial(self, trial_id: int) -> None:
        last = self._backend.last_trial_id()
        recorded = f"its trial ids go up to {last}" if last else "it has no trial yet"
        raise TrialIDNotFoundError(
            f"Unable to find trial id: {trial_id}. trial {trial_id} of experiment {self.id!r} does "
            f"not exist: {recorded}"
        )

    def get_history(self, verbose: bool = False) -> pd.DataFrame:
        """All trials as a DataFrame indexed by ``Trial ID``, running ones included.

        The ``Status`` column says ``running``, ``finished``, ``failed``,
        ``interrupted`` (Ctrl+C) or ``killed`` (a running trial whose process
        stopped marking it alive, see :mod:`daskperiment.status`); ``Success``
        is 0.5's: True for finished trials only.

        Parameters
        ----------
        verbose : bool, default False
            Also show the ``Result Type`` and ``Seed`` columns.

        Notes
        -----
        When some trial has a note or tags, the columns ``Note`` (text) and
        ``Tags`` (sorted, joined by ``", "``) are shown (see :meth:`set_note`,
        :meth:`add_tags`).
        """
        starts = self._backend.load_starts()  # before the trials: one ending meanwhile is in those
        with bulk_decoding():  # the columns are freed before the collector runs again: it never scans them
            columns = self._backend.load_trial_columns()
            annotations = self._backend.load_annotations()
            return history_frame(columns, verbose=verbose, starts=starts, annotations=annotations)

    def get_persisted(self, step: str | Step, trial_id: int) -> Any:
        """The output an ``@ex.persist`` step returned in trial ``trial_id``."""
        name = step.name if isinstance(step, Step) else step
        trial_id = self._check_trial_id(trial_id)
        persisted = self._backend.load_persisted(name, trial_id)
        if persisted is None:
            self._trial(trial_id)  # an unknown trial is the clearer error
            raise PersistedValueNotFoundError(
                f"step {name!r} persisted nothing in trial {trial_id} of experiment {self.id!r}: "
                "only steps decorated with @ex.persist that finished are stored"
            )
        try:
            return serialization.load_value(persisted.payload)
        except ValueError as exc:  # UnreadableValueError, or damaged bytes
            raise UnreadableValueError(
                f"output of step {name!r} persisted in trial {trial_id} of experiment {self.id!r}: {exc}"
            ) from None

    # -- metrics ------------------------------------------------------------------
    def save_metric(
        self, key: str | None = None, epoch: int | None = None, value: float | None = None,
        *, metric_key: str | None = None,
    ) -> None:
        """Save the value of metric ``key`` at ``epoch``; call it inside a step.

        Parameters
        ----------
        key : str
            Name of the metric, e.g. ``"loss"`` (``metric_key=`` as in daskperiment 0.5).
        epoch : int
            Epoch (or step) of the value.
        value : int or float
            The value; a metric whose every value is an integer loads back as integers.

        Raises
        ------
        TrialIDNotFoundError
            Outside a running step of this experiment.
        MetricError
            For a point the stores cannot hold: an empty or non-str key, or one
            holding NUL or a lone surrogate; an epoch that is not an integer
            within 64 bits; a value that is not a real number, or an integer
            beyond 2**53 in magnitude. The trial goes on if the step handles the error.

        Notes
        -----
        The call only keeps the point in memory, with the time of the call
        (POSIX time, UTC seconds: :meth:`load_metric_points` reads it back).
        While the trial runs, a
        background thread writes the points saved so far in batches (every
        2 s, or every 10,000 points; see :mod:`daskperiment.metricstream`),
        so :meth:`load_metric`, ``daskperiment show --follow`` and the
        dashboard show them, and a process killed mid-trial leaves them
        recorded. Points saved by steps running in other processes (the
        ``processes`` scheduler, ``dask.distributed`` workers) are written
        when the trial ends.
        """
        if metric_key is not None:
            key = _metric_key_argument(key, metric_key, "save_metric")
        recorder = active_step.get(None)
        if recorder is not None:
            context = recorder.context
            if context is None or context.experiment_id == self.id:  # None: a dry run
                point = (key, epoch, value, clock()) if is_plain(key, epoch, value) else (
                    *checked_point(key, epoch, value), clock())
                metrics = recorder.metrics
                if not metrics and context is not None:  # the step's first point
                    self._tracker.stream_metrics(recorder)
                metrics.append(point)
                return
        current_context(self.id, "save_metric")  # raises: no trial of this experiment runs

    def load_metric(
        self, key: str | None = None, trial_id: int | Sequence[int] | None = None,
        *, metric_key: str | None = None,
    ) -> pd.DataFrame:
        """Values of metric ``key``: indexed by ``Epoch``, one column per trial.

        Parameters
        ----------
        key : str
            Metric key given to :meth:`save_metric` (``metric_key=`` as in daskperiment 0.5).
        trial_id : int or list of int
            The trial(s) whose values to load; for a running trial, the
            points flushed so far (see :meth:`save_metric`).

        Returns
        -------
        pandas.DataFrame
            int64 columns for a metric whose every saved value was an integer,
            float64 otherwise. :meth:`load_metric_points` gives every point
            with the time it was saved.

        Raises
        ------
        TrialIDNotFoundError
            For an unknown trial, or a trial that saved no value of ``key``.
        MetricError
            When no trial saved a metric ``key``.
        """
        if metric_key is not None:
            key = _metric_key_argument(key, metric_key, "load_metric")
        points, ids = self._metric_points(key, trial_id, "load_metric")
        return metric_frame(points, ids)

    def load_metric_points(self, key: str, trial_id: int | Sequence[int]) -> pd.DataFrame:
        """Every point of metric ``key`` saved by the trial(s), with the time it was saved.

        Parameters
        ----------
        key : str
            Metric key given to :meth:`save_metric`.
        trial_id : int or list of int
            The trial(s) whose points to load; for a running trial, the
            points flushed so far.

        Returns
        -------
        pandas.DataFrame
            One row per saved point, by trial, epoch, then the order they were
            saved (an epoch saved twice has two rows, where :meth:`load_metric`
            keeps the last): ``Trial ID`` and ``Epoch`` (int64), ``Value``
            (int64 for a metric whose every value was an int, else float64)
            and ``Time``, the time of the ``save_metric`` call
            (``datetime64[ns, UTC]``; ``NaT`` for points stored by an
            older daskperiment, which kept no time).

        Raises
        ------
        TrialIDNotFoundError
            For an unknown trial, or a trial that saved no value of ``key``.
        MetricError
            When no trial saved a metric ``key``.

        Notes
        -----
        Points a trial took from the step cache (a step it did not compute)
        carry the time it took them. Seconds since each trial's first point::

            points = ex.load_metric_points("loss", [1, 2])
            points["Time"] - points.groupby("Trial ID")["Time"].transform("min")
        """
        points, _ = self._metric_points(key, trial_id, "load_metric_points")
        return metric_points_frame(points)

    def _metric_points(
        self, key: str | None, trial_id: int | Sequence[int] | None, what: str
    ) -> tuple[MetricSeries, list[int]]:
        """The points of ``key`` of the trial(s) asked for, and their ids; clear errors for what lacks."""
        if key is None or trial_id is None:
            raise TypeError(
                f"{what}() needs a metric key and a trial id, e.g. "
                f"ex.{what}('loss', trial_id=1) or ex.{what}('loss', trial_id=[1, 2])"
            )
        ids = [trial_id] if isinstance(trial_id, numbers.Integral) else list(trial_id)
        ids = [self._check_trial_id(t) for t in ids]
        found = {t.trial_id for t in self._backend.load_trials(ids)}
        unrecorded = [t for t in ids if t not in found]
        if unrecorded:  # running (or killed) trials: the points flushed so far
            found.update(self._backend.load_starts(unrecorded))
        for missing in (t for t in ids if t not in found):
            self._raise_unknown_trial(missing)
        points = self._backend.load_metrics(key, ids)
        keys = self._backend.metric_keys() if not points else [key]
        if key not in keys:
            raise MetricError(
                f"unknown metric {key!r} in experiment {self.id!r}: saved metrics are "
                f"{', '.join(map(repr, keys)) or 'none yet'}"
            )
        saved = set(points.trial_ids.tolist())
        for without in (t for t in ids if t not in saved):
            raise TrialIDNotFoundError(
                f"Unable to find trial id: {without}. trial {without} of experiment {self.id!r} "
                f"saved no value of metric {key!r}: a trial has a metric when one of its steps "
                f"called ex.save_metric({key!r}, epoch, value); ask for trials that did"
            )
        return points, ids

    # -- notes and tags ----------------------------------------------------------------
    def set_note(self, trial_id: int | str | None = None, text: str | None = None) -> None:
        """Set the note of a trial: ``ex.set_note(3, "diverged")``; ``""`` clears it.

        Inside a running step, ``ex.set_note("text")`` (the trial id left out)
        annotates the running trial. Notes can be set while the trial runs and
        at any time after; the history shows them in its ``Note`` column.

        Parameters
        ----------
        trial_id : int, optional
            A recorded trial; by default (inside a step) the running one.
        text : str
            The note: at most 65,536 characters, newlines and tabs allowed, no
            other control character (see :mod:`daskperiment.annotations`).

        Raises
        ------
        TrialIDNotFoundError
            For an unknown trial, or no trial id outside a running step.
        TypeError
            When the text is not a str.
        AnnotationError
            For text that cannot be kept (too long, control characters, lone surrogates).
        """
        if isinstance(trial_id, str) and text is None:
            trial_id, text = None, trial_id
        note = check_note(text)
        target = self._annotated_trial(trial_id, "set_note")
        if target is not None:
            self._backend.edit_annotations([AnnotationEdit(target, note=note)])

    def get_note(self, trial_id: int | None = None) -> str:
        """The note of trial ``trial_id`` (inside a step, by default the running trial); ``""`` if none.

        Raises
        ------
        TrialIDNotFoundError
            For an unknown trial, or no trial id outside a running step.
        """
        return self._annotation(trial_id, "get_note").note

    def add_tags(self, trial_id: int | str, *tags: str) -> None:
        """Add tags to a trial: ``ex.add_tags(3, "baseline", "lr-sweep")``.

        Inside a running step, ``ex.add_tags("baseline")`` (no trial id) tags
        the running trial. Tags form a set: adding one it has changes nothing.

        Parameters
        ----------
        trial_id : int, optional
            A recorded trial; left out inside a step, the running one.
        *tags : str
            1 to 64 characters each, no comma, no control character, no space
            at either end; a trial has at most 64 tags.

        Raises
        ------
        TrialIDNotFoundError
            For an unknown trial, or no trial id outside a running step.
        TypeError
            When no tag is given, or a tag is not a str.
        AnnotationError
            For a malformed tag, or more than 64 tags on the trial.
        """
        self._edit_tags("add_tags", trial_id, tags, add=True)

    def remove_tags(self, trial_id: int | str, *tags: str) -> None:
        """Remove tags from a trial (tags it does not have are ignored); see :meth:`add_tags`."""
        self._edit_tags("remove_tags", trial_id, tags, add=False)

    def get_tags(self, trial_id: int | None = None) -> frozenset[str]:
        """The tags of trial ``trial_id`` (inside a step, by default the running trial).

        Raises
        ------
        TrialIDNotFoundError
            For an unknown trial, or no trial id outside a running step.
        """
        return self._annotation(trial_id, "get_tags").tags

    def _edit_tags(self, what: str, trial_id: int | str | None, tags: tuple[str, ...], *, add: bool) -> None:
        if isinstance(trial_id, str):  # no trial id: tags of the running trial
            trial_id, tags = None, (trial_id, *tags)
        if not tags:
            raise TypeError(f"{what}() needs at least one tag, e.g. ex.{what}(3, 'baseline')")
        checked = check_tags(tags)
        target = self._annotated_trial(trial_id, what)
        if target is None:
            return
        if add:
            current = self._backend.load_annotations([target]).get(target, Annotation(target))
            check_tag_count(current.tags | checked, target)
        edit = AnnotationEdit(target, add_tags=checked) if add else AnnotationEdit(target, remove_tags=checked)
        self._backend.edit_annotations([edit])

    def _annotation(self, trial_id: int | None, what: str) -> Annotation:
        target = self._annotated_trial(trial_id, what)
        if target is None:
            return Annotation(0)
        return self._backend.load_annotations([target]).get(target, Annotation(target))

    def _annotated_trial(self, trial_id: object, what: str) -> int | None:
        """The trial a note or tag call is about: ``trial_id`` once checked, else the running trial.

        None in a dry run (a step computed outside any trial): nothing is annotated.
        """
        recorder = active_step.get(None)
        running = recorder.context if recorder is not None else None
        if trial_id is None:
            if recorder is not None and running is None:
                return None
            return current_context(self.id, what).trial_id
        checked = self._check_trial_id(trial_id)
        if running is not None and running.experiment_id == self.id and checked in running.trial_ids:
            return checked  # the running trial, maybe not recorded yet
        self._trial(checked)  # raises for an unknown trial
        return checked

    # -- deleting -----------------------------------------------------------------------
    def delete_trials(self, trial_ids: int | Sequence[int], *, files: bool = True) -> list[int]:
        """Delete trials with their metrics, persisted values, artifacts, notes and tags.

        Each trial goes whole or not at all (see
        :meth:`daskperiment.backend.Backend.delete_trials`); code and
        environment records no remaining trial uses go too. Deleted ids are
        never given to new trials. The step cache is kept (see :meth:`clear_cache`).

        Parameters
        ----------
        trial_ids : int or sequence of int
            The trials to delete.
        files : bool, default True
            Also remove the artifact files no remaining trial uses; False keeps
            them (for an artifact location other experiments share).

        Returns
        -------
        list of int
            The ids deleted, sorted.

        Raises
        ------
        TrialIDNotFoundError
            For an id of no recorded trial (nothing is deleted).
        TrialRunningError
            For a trial still running (killed ones can be deleted; nothing is deleted).
        """
        ids = [trial_ids] if isinstance(trial_ids, numbers.Integral) else list(trial_ids)
        ids = sorted({self._check_trial_id(t) for t in ids})
        found = {t.trial_id for t in self._backend.load_trials(ids)}
        starts = self._backend.load_starts([t for t in ids if t not in found]) if len(found) < len(ids) else {}
        missing = [t for t in ids if t not in found and t not in starts]
        if missing:
            last = self._backend.last_trial_id()
            raise TrialIDNotFoundError(
                f"Unable to find trial id: {missing[0]}. cannot delete trial"
                f"{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))} of experiment "
                f"{self.id!r}: not recorded (its trial ids go up to {last}); nothing was deleted"
            )
        now = time.time()
        running = [t for t, start in starts.items() if start.status(now) == RUNNING]
        if running:
            raise TrialRunningError(
                f"cannot delete trial{'s' if len(running) > 1 else ''} {', '.join(map(str, running))} "
                f"of experiment {self.id!r}: still running (its process marks it alive); delete it "
                "once it has ended, or once it shows as killed; nothing was deleted"
            )
        return list(deletion.delete_trials(self._backend, self.artifacts, ids, files=files).trial_ids)

    def delete_experiment(self, *, files: bool = True) -> int:
        """Delete every record of this experiment, and its artifact files; return how many trials it had.

        Trials, metrics, persisted values, artifacts, notes, tags, code and
        environment records, the step cache and settings go. The experiment
        stays open and empty: trials run later start again from id 1.
        Other processes using it log that the store lost its records.

        Parameters
        ----------
        files : bool, default True
            Also remove the files of its artifacts and cached outputs.
        """
        return len(deletion.delete_experiment(self._backend, self.artifacts, files=files).trial_ids)

    # -- code and environment ----------------------------------------------------------
    def get_code(self, trial_id: int | None = None) -> str:
        """Source of the steps: as now, or as trial ``trial_id`` ran them."""
        if trial_id is None:
            return self._tracker.code.snapshot()[1]
        blob = self._backend.load_blob(self._trial(trial_id).code_digest)
        return blob.content.decode("utf-8") if blob is not None else ""

    def code_file(self, trial_id: int) -> Path:
        """Trial ``trial_id``'s code as a ``.py`` file, for diff tools and Git (made on request).

        The file is ``code/<id>_<trial id>.py`` in the local store's folder
        (daskperiment 0.5's name and place; for a server store, in
        ``daskperiment_cache/<id>/code`` of the working directory), with the
        text :meth:`get_code` returns. Recording a trial writes no such file:
        the store keeps one file per code version, ``code/versions/<digest>.py``,
        and the trial's file is a hard link to it (a copy where no link can be made).

        Parameters
        ----------
        trial_id : int
            A recorded trial.

        Returns
        -------
        pathlib.Path
            The file.

        Raises
        ------
        TrialIDNotFoundError
            For a trial that is not recorded.
        BackendError
            When the file cannot be written (a read-only folder, a full disk).
        """
        record = self._trial(trial_id)
        blob = self._backend.load_blob(record.code_digest)
        if isinstance(self._backend, LocalBackend):
            folder = self._backend.code_directory
        else:
            folder = Path(DEFAULT_CACHE_DIRECTORY).absolute() / self.id / "code"
        try:
            return trial_code_file(
                folder, self.id, record.trial_id, record.code_digest, blob.content if blob is not None else b""
            )
        except OSError as exc:
            raise BackendError(
                f"cannot write the code file of trial {record.trial_id} in {folder}: {exc}. "
                "Read the code with ex.get_code(trial_id) instead, or make the folder writable"
            ) from exc

    def _environment(self, trial_id: int | None) -> dict[str, Any]:
        if trial_id is None:
            return collector.environment_future().result()
        digest = self._trial(trial_id).environment_digest
        blob = self._backend.load_blob(digest) if digest else None
        if blob is None:
            raise TrialIDNotFoundError(f"trial {trial_id} of experiment {self.id!r} has no environment")
        return load_environment(blob)

    def get_environment(self, trial_id: int | None = None, category: str | None = None) -> str:
        """The environment as text (lines joined): of this process, or of trial ``trial_id``.

        Parameters
        ----------
        trial_id : int, optional
            A recorded trial; by default the environment of this process.
        category : str, optional
            One category in full (``platform``, ``cpu``, ``python``,
            ``requirements`` (the pip-freeze list), ``packages`` (with
            locations), ``git``, ``numpy``, ``scipy``, ``pandas``, ``conda``);
            by default a summary (``Platform Information:``, ``Device CPU
            Count:``, ``Python Version:``, ``Python venv:``, ``Git Repository:``, ...).

        Returns
        -------
        str
            As daskperiment 0.5 returned it; :meth:`get_environment_info`
            gives the captured data itself.
        """
        return collector.environment_text(self._environment(trial_id), category)

    def get_environment_info(self, trial_id: int | None = None) -> dict[str, dict[str, Any]]:
        """The captured environment as data: ``{category: {fact: value}}``.

        Of this process, or of trial ``trial_id``; categories that captured
        nothing (no git repository, no conda) are absent. The dict is a copy.
        """
        return copy.deepcopy(self._environment(trial_id))

    def get_python_packages(self, trial_id: int | None = None) -> str:
        """Installed packages as pip-freeze text (``name==version`` lines): now, or for trial ``trial_id``."""
        return collector.environment_text(self._environment(trial_id), "requirements")

    # -- artifacts --------------------------------------------------------------------
    def artifact_dir(self, name: str) -> Path:
        """A folder whose files are kept as artifact ``name`` of the running trial.

        Call it inside a step; write files into the folder. When the step ends
        (and every 30 s while it runs) they are uploaded to the artifact store.

        Raises
        ------
        TrialIDNotFoundError
            Outside a running step of this experiment.
        ValueError
            For a name that is not 1 to 128 letters, digits, ``_``, ``-`` or ``.``.
        """
        return self._step_artifacts("artifact_dir").folder(name)

    def capture_artifact(self, path: str | os.PathLike[str], name: str | None = None) -> str:
        """Keep the file or folder ``path`` as an artifact of the running trial; return its name.

        Call it inside a step, once the file exists; it is uploaded when the
        step ends (its content then). ``name`` defaults to the file name.

        Raises
        ------
        ArtifactError
            When ``path`` does not exist, or the name is taken in this step.
        """
        return self._step_artifacts("capture_artifact").add(path, name)

    def _step_artifacts(self, what: str) -> StepArtifacts:
        current_context(self.id, what)
        recorder = active_step.get()
        if recorder.artifacts is None:
            recorder.artifacts = StepArtifacts(self.artifacts, recorder.step or "step")
            if recorder.stream is None:  # the files it uploads while it runs are listed with the metric stream
                self._tracker.stream_metrics(recorder)
        return recorder.artifacts

    def get_artifacts(self, trial_id: int) -> pd.DataFrame:
        """The files trial ``trial_id`` kept: one row per file.

        For a running trial, the files its steps (in this process) uploaded
        so far: uploads happen every ``capture.UPLOAD_INTERVAL`` seconds
        while a step runs, listed with the next metric batch.

        Returns
        -------
        pandas.DataFrame
            Columns ``Artifact``, ``Path`` (inside a folder artifact, empty for
            a single file), ``Size`` (bytes), ``Step`` and ``Digest``.
        """
        return artifact_frame(self._artifact_records(trial_id))

    def get_artifact(self, name: str, trial_id: int) -> Path:
        """A local path to artifact ``name`` of trial ``trial_id``: a file, or a folder of files.

        Remote content is downloaded once into a local cache; the files are
        read-only (copy them to change them).

        Raises
        ------
        TrialIDNotFoundError
            For an unknown trial.
        ArtifactError
            When the trial kept no artifact of that name, or its content cannot be read.
        """
        records = [r for r in self._artifact_records(trial_id) if r.name == name]
        if not records:
            kept = sorted({r.name for r in self._artifact_records(trial_id)})
            raise ArtifactError(
                f"trial {trial_id} of experiment {self.id!r} kept no artifact {name!r}; it kept "
                f"{', '.join(map(repr, kept)) or 'none'}"
            )
        return local_artifact(self.artifacts, artifact_files(records))

    def artifact(self, name: str, trial_id: int) -> Delayed:
        """Artifact ``name`` of trial ``trial_id`` as an input of another experiment's steps.

        Returns a ``dask.delayed`` value that is the artifact's local path
        wherever the step runs (downloaded there once); its cache key is the
        artifact's content, so cached steps using it are computed again only
        when it changes. Another experiment's artifact: ``Experiment(other_id)
        .artifact(name, trial_id)``.
        """
        records = [r for r in self._artifact_records(trial_id) if r.name == name]
        if not records:
            self.get_artifact(name, trial_id)  # raises the error listing what the trial kept
        return artifact_input(self.artifacts, artifact_files(records))

    def _artifact_records(self, trial_id: int) -> list[ArtifactRecord]:
        trial_id = self._check_trial_id(trial_id)
        if not self._backend.load_starts([trial_id]):  # a running (or killed) trial: the files listed so far
            self._trial(trial_id)  # raises for an unknown trial
        return self._backend.load_artifacts(trial_id)

    # -- step cache -------------------------------------------------------------------
    def get_cache(self) -> pd.DataFrame:
        """The step cache's entries, least recently used first.

        Returns
        -------
        pandas.DataFrame
            Indexed by ``Key`` (the cache key); columns ``Step``, ``Trial ID``
            (the trial that computed the output), ``Size`` (bytes),
            ``Stored In`` (``"store"`` or ``"artifacts"``), ``Created`` and
            ``Last Used``.
        """
        return cache_frame(self._tracker.cache.entries())

    def clear_cache(self, steps: str | Sequence[str] | None = None) -> int:
        """Remove the cached outputs of every step, or of the named steps; return how many.

        Trials recorded with those outputs keep their records; later trials
        compute the steps again.
        """
        names = [steps] if isinstance(steps, str) else None if steps is None else list(steps)
        return len(self._tracker.cache.clear(names))

    def set_cache_limit(self, size: int | str) -> None:
        """Keep the step cache under ``size`` (bytes, or e.g. ``"2GB"``), least recently used out first.

        The limit is stored with the experiment; entries above it are evicted now.

        Raises
        ------
        ValueError
            For a size that is not a non-negative number of bytes.
        """
        self._tracker.cache.set_limit(size)

    def get_cache_limit(self) -> int:
        """The step cache's size limit in bytes (10 GiB unless set)."""
        return self._tracker.cache.limit()

    def start_dashboard(
        self, port: int = 5006, host: str = "127.0.0.1", blocking: bool | None = None
    ) -> Any:
        """Serve the web dashboard of this experiment (needs ``pip install 'daskperiment[board]'``).

        Its URL is logged at INFO (on stderr too when it blocks and logging is
        not configured, as in script mode).

        Parameters
        ----------
        port : int, default 5006
            Port to listen on; 0 picks a free one.
        host : str, default "127.0.0.1"
            Address to listen on; only this machine can connect by default.
        blocking : bool, optional
            True serves until interrupted (Ctrl+C) and returns None; False runs
            the server in the background and returns its handle (``.url``,
            ``.stop()``). By default it blocks in a script and not in Jupyter
            or an interactive shell.
        """
        from daskperiment import board  # imports bokeh: only when a dashboard is wanted

        if blocking is None:
            blocking = not board.interactive_session()
        if not checked_flag("blocking", blocking):
            return board.start(self.id, self._backend, host=host, port=port, artifacts=self.artifacts)
        with script_logging():
            board.serve(self.id, self._backend, host=host, port=port, artifacts=self.artifacts)
        return None


def _experiment_in_worker(
    experiment_id: str, backend: Backend, seed: int | None, artifacts: ArtifactStore
) -> Experiment:
    """Unpickle an experiment: the one of this process, or the same one opened here."""
    return Experiment._get_or_open(experiment_id, backend, seed, artifacts, user=False)


def _metric_key_argument(key: str | None, metric_key: str, what: str) -> str:
    """The metric key given as ``metric_key=`` (daskperiment 0.5's keyword) instead of ``key``."""
    if key is not None:
        raise TypeError(
            f"{what}() got the metric key twice ({key!r} and metric_key={metric_key!r}): "
            "give it once, e.g. key='loss' or metric_key='loss'"
        )
    return metric_key
