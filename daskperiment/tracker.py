"""Running trials of one experiment and recording each: blocking, in the background, or many.

A :class:`Tracker` holds what a trial needs from its experiment (parameters,
code, default seed, store) and never touches global state of a trial: the
values a trial runs with are given to it, resolved once when it starts.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from daskperiment import seeding, status
from daskperiment.artifactstore import ArtifactStore
from daskperiment.backend.base import Backend
from daskperiment.codecontext import CodeContext
from daskperiment.context import StepRecorder, process_identity
from daskperiment.envblob import environment_fingerprint
from daskperiment.errors import ExperimentReinitializedError
from daskperiment.cachekeys import sweep_cache_keys, uses_cache
from daskperiment.graph import CacheUse, GraphSettings, Plan, StepCall, TrialSpec, trial_graph
from daskperiment.heartbeat import heartbeats
from daskperiment.metricstream import metric_stream
from daskperiment.options import checked_flag
from daskperiment.outcome import TrialOutcome
from daskperiment.parameter import ParameterSet
from daskperiment.records import TrialStart
from daskperiment.scheduling import Runner
from daskperiment.stepcache import StepCache
from daskperiment.trialmessages import log_finished, log_started, trial_log_level
from daskperiment.writer import TrialWriter

logger = logging.getLogger(__name__)


class TrialFuture(Future):
    """The future of a trial submitted with :meth:`Experiment.submit`.

    Its result is the trial's result (or the error a step raised); the trial
    is recorded before the future completes.

    Attributes
    ----------
    trial_id : int
        Id of the trial, known as soon as it is submitted.
    """

    def __init__(self, trial_id: int) -> None:
        super().__init__()
        self.trial_id = trial_id

    def __repr__(self) -> str:
        return f"<TrialFuture trial {self.trial_id} {self._state.lower()}>"


@dataclass(frozen=True, slots=True)
class StartedTrial:
    """A trial whose id, values and graph are fixed, ready for its scheduler."""

    spec: TrialSpec
    runner: Runner
    graph: dict[str, Any]
    key: str
    code: tuple[str, str]
    started: float
    sweep_id: str | None = None
    cached: bool = False


class Tracker:
    """Runs and records the trials of one experiment.

    Parameters
    ----------
    experiment_id : str
        Id of the experiment.
    backend : Backend
        Its store.
    parameters : ParameterSet
        Its parameters.
    code : CodeContext
        The source of its steps.
    cache : StepCache
        Its step cache.
    artifacts : ArtifactStore
        Where the files its trials keep are stored.
    seed : int, optional
        Default seed of its trials.
    """

    def __init__(
        self, experiment_id: str, backend: Backend, parameters: ParameterSet, code: CodeContext,
        cache: StepCache, artifacts: ArtifactStore, seed: int | None = None,
    ) -> None:
        self.experiment_id = experiment_id
        self.backend = backend
        self.parameters = parameters
        self.code = code
        self.cache = cache
        self.seed = seed
        self.writer = TrialWriter(backend, artifacts)
        self.session = uuid.uuid4().hex
        self._graphs = itertools.count()
        """Numbers the graphs of single trials (their keys: the session and that number)."""
        self._settings: dict[tuple[str, bool, bool], GraphSettings] = {}
        self.heartbeats = heartbeats()
        self.stream = metric_stream()
        self._pid = os.getpid()
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._retired: str | None = None

    def retire(self, reason: str) -> None:
        """Refuse new trials from now on (trials started already finish and are recorded).

        ``reason`` is the message of the :class:`ExperimentReinitializedError`
        raised by :meth:`check_active`.
        """
        self._retired = reason

    def check_active(self) -> None:
        """Raise :class:`ExperimentReinitializedError` once :meth:`retire` was called."""
        if self._retired is not None:
            raise ExperimentReinitializedError(self._retired)

    def graph_settings(self, runner: Runner, share: bool = False) -> GraphSettings:
        """How trial graphs for ``runner`` are built (made once per process and kind of graph)."""
        wanted = (process_identity(), share, runner.client is not None)
        settings = self._settings.get(wanted)
        if settings is None:
            settings = self._settings[wanted] = GraphSettings(
                experiment_id=self.experiment_id,
                origin=wanted[0],
                environment=environment_fingerprint(),
                session=self.session,
                share=share,
                records_apart=wanted[2],
            )
        return settings

    def cache_use(self, plan: Plan, trials: list[TrialSpec], lookup: bool) -> CacheUse | None:
        """The step cache for graphs of ``trials`` (None when no step is cached).

        ``lookup=False`` forces recomputation: nothing is loaded, every cached
        step computes and replaces its entry.
        """
        if not uses_cache(plan):
            return None
        keys = sweep_cache_keys(plan, trials)
        cached = [i for i, node in enumerate(plan.nodes) if isinstance(node, StepCall) and node.spec.cache]
        wanted = {keys[t.trial_id][i] for t in trials for i in cached} - {None}
        found = self.cache.lookup(wanted) if lookup else {}  # type: ignore[arg-type]
        return CacheUse(self.cache, keys, found)

    # -- one trial ---------------------------------------------------------------
    def run(
        self, call: StepCall, values: Mapping[str, Any], seed: int | None, scheduler: Any,
        options: dict[str, Any], *, cache: bool = True,
    ) -> Any:
        """Run one trial of ``call`` with ``values`` over the current parameters; record it.

        ``cache=False`` computes every cached step again (refreshing its entry).
        """
        trial = self._start(call, values, seed, scheduler, options, cache=cache)
        return self._finish(trial, self._compute(trial))

    def submit(
        self, call: StepCall, values: Mapping[str, Any], seed: int | None, scheduler: Any,
        options: dict[str, Any], *, sweep_id: str | None = None, cache: bool = True,
    ) -> TrialFuture:
        """Start one trial without waiting; its future completes once it is recorded.

        ``sweep_id`` records the trial as part of that sweep (or search);
        ``cache`` is as for :meth:`run`.
        """
        trial = self._start(call, values, seed, scheduler, options, sweep_id, cache=cache)
        future = TrialFuture(trial.spec.trial_id)
        future.set_running_or_notify_cancel()
        try:
            if trial.runner.client is not None:
                trial.runner.submit(
                    trial.graph, trial.key,
                    lambda key, outcome, error: self._settle(future, trial, outcome, error),
                )
            else:
                self._background().submit(self._run_in_background, future, trial)
        except BaseException as exc:  # it never ran: recorded as failed (or interrupted)
            self._settle(future, trial, None, exc)
            raise
        return future

    def _run_in_background(self, future: TrialFuture, trial: StartedTrial) -> None:
        self._settle(future, trial, self._compute(trial), None)

    @staticmethod
    def _compute(trial: StartedTrial) -> TrialOutcome:
        """Compute a started trial on a local scheduler, in this thread."""
        seeding.seed_everything(trial.spec.seed)
        try:
            return trial.runner.run(trial.graph, [], _ignore, extra_keys=[trial.key])[trial.key]
        except BaseException as exc:  # the scheduler itself failed, or was interrupted
            return TrialOutcome(trial.spec.trial_id, error=exc)

    def _settle(
        self, future: TrialFuture, trial: StartedTrial, outcome: TrialOutcome | None,
        error: BaseException | None,
    ) -> None:
        try:
            result = self._finish(trial, outcome or TrialOutcome(trial.spec.trial_id, error=error))
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(result)

    def _start(
        self, call: StepCall, values: Mapping[str, Any], seed: int | None, scheduler: Any,
        options: dict[str, Any], sweep_id: str | None = None, *, cache: bool = True,
    ) -> StartedTrial:
        self.check_active()
        cache = checked_flag("cache", cache)
        plan = call.plan()
        parameters = self.parameters.resolve(plan.parameters, values)
        level = trial_log_level(sweep_id)
        given = seed is not None or self.seed is not None or sweep_id is not None  # else generated
        chosen = seeding.choose_seed(seed, self.seed, level)
        runner = Runner.choose(scheduler, options)
        code = self.code.snapshot()
        spec = TrialSpec(self.start_trials([parameters], [chosen], sweep_id)[0], parameters, chosen, given)
        log_started(spec.trial_id, sweep_id)
        started = time.perf_counter()
        try:
            use = self.cache_use(plan, [spec], cache)
            token = f"{self.session}-{next(self._graphs)}"
            built = trial_graph(plan, [spec], self.graph_settings(runner), token, cache=use, fuse=True)
        except BaseException as exc:  # started, yet it cannot run: recorded as failed (or interrupted)
            outcome = TrialOutcome(spec.trial_id, error=exc)
            self._record(StartedTrial(spec, runner, {}, "", code, started, sweep_id), outcome)
            log_finished(outcome, sweep_id)
            raise
        return StartedTrial(
            spec, runner, built.graph, built.trial_keys[spec.trial_id], code, started, sweep_id,
            use is not None,
        )

    def start_trials(
        self, parameters: list[Mapping[str, Any]], seeds: list[int], sweep_id: str | None = None
    ) -> range:
        """Record trials with these parameters and seeds as running (in one batch); return their ids.

        Their heartbeat starts; :meth:`end_trials` stops it once their end is recorded.
        """
        now = time.time()
        process = process_identity()
        starts = [
            TrialStart(values, seed, now, now, status.HEARTBEAT_SECONDS, process, sweep_id)
            for values, seed in zip(parameters, seeds)
        ]
        ids = self.backend.start_trials(starts)
        self.heartbeats.add(self.backend, ids)
        return ids

    def end_trials(self, trial_ids: Sequence[int]) -> None:
        """Stop the heartbeat of trials whose end is recorded (or could not be)."""
        self.heartbeats.discard(self.backend, trial_ids)

    def stream_metrics(self, recorder: StepRecorder) -> None:
        """Write the metric points of ``recorder``'s step while it runs, if it runs in this process.

        Called with a step's first point. Steps of trials started by another
        process (or by this tracker before a fork) are not streamed: their
        points are written with the trial's record.
        """
        if recorder.context.session == self.session and os.getpid() == self._pid:  # type: ignore[union-attr]
            self.stream.watch(self.backend, recorder)

    def finish_metrics(self, trial_ids: Sequence[int]) -> None:
        """Before the record of trials ending: write the points of their steps that never ended."""
        self.stream.finish_trials(self.backend, trial_ids)

    def _finish(self, trial: StartedTrial, outcome: TrialOutcome) -> Any:
        self._record(trial, outcome)
        if trial.cached:
            self.cache.enforce_limit()
        log_finished(outcome, trial.sweep_id)
        if outcome.error is not None:
            raise outcome.error
        return outcome.result

    def _record(self, trial: StartedTrial, outcome: TrialOutcome) -> None:
        """Write the end of a started trial; its heartbeat stops even when that fails."""
        try:
            self.finish_metrics([trial.spec.trial_id])
            self.writer.write(
                outcome,
                parameters=trial.spec.parameters,
                seed=trial.spec.seed,
                process_time=time.perf_counter() - trial.started,
                code=trial.code,
                sweep_id=trial.sweep_id,
            )
        finally:
            self.end_trials([trial.spec.trial_id])

    def _background(self) -> ThreadPoolExecutor:
        with self._executor_lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(thread_name_prefix=f"daskperiment-{self.experiment_id}")
            return self._executor


def _ignore(key: str, outcome: Any, error: BaseException | None) -> None:
    """Single trials read their outcome from the scheduler's return value."""

