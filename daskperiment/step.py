"""Steps: decorated functions whose calls become tasks of a dask graph."""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from dask.delayed import Delayed, delayed

from daskperiment import seeding, serialization
from daskperiment.context import (
    StepRecorder,
    TrialContext,
    active_step,
    describe_arguments,
    local_buffer,
)
from daskperiment.errors import PersistError
from daskperiment.purity import hash_call, warn_impure
from daskperiment.records import PersistedValue, RecordBatch

if TYPE_CHECKING:
    from daskperiment.experiment import Experiment

@dataclass(frozen=True, slots=True)
class StepSpec:
    """What a task needs to run one step: the function and how to record it."""

    name: str
    func: Callable
    persist: bool
    code_digest: str


class Step:
    """A function decorated with ``@ex``, ``@ex.persist`` or ``@ex.result``.

    Calling it does not run the function: it returns a ``dask.delayed`` object
    (for ``@ex.result``, a :class:`~daskperiment.trial.TrialResult`) whose
    computation runs it inside a trial.
    """

    def __init__(
        self, experiment: "Experiment", func: Callable, *, persist: bool, result: bool
    ) -> None:
        if isinstance(func, Step):
            persist, result, func = persist or func.persist, result or func.is_result, func.func
        if not callable(func):
            raise TypeError(f"@ex decorates functions, not {type(func).__name__} objects")
        self.experiment = experiment
        self.func = func
        self.persist = persist
        self.is_result = result
        self.name: str = getattr(func, "__name__", type(func).__name__)
        code_digest = experiment._register_step(self.name, func)
        self._spec = StepSpec(self.name, func, persist, code_digest)
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        task = delayed(run_step, pure=False)(
            self.experiment._trial_placeholder,
            self._spec,
            *args,
            dask_key_name=f"{self.name}-{uuid.uuid4().hex}",
            **kwargs,
        )
        if self.is_result:
            from daskperiment.script import run_script_trial, script_mode_active
            from daskperiment.trial import TrialResult

            if script_mode_active(self.func):  # `python script.py a=1`: run the trial now
                return run_script_trial(TrialResult(self.experiment, task), self.experiment)
            return TrialResult(self.experiment, task)
        return task

    def __repr__(self) -> str:
        kind = "result" if self.is_result else "persist" if self.persist else "step"
        return f"<daskperiment {kind} {self.name} of experiment {self.experiment.id!r}>"


def no_trial() -> None:
    """Task of the trial-context placeholder: outside a trial there is none."""
    return None


def trial_placeholder(experiment_id: str) -> Delayed:
    """The graph node every step of ``experiment_id`` depends on; a trial fills it."""
    return delayed(no_trial, pure=True)(dask_key_name=trial_context_key(experiment_id))


def trial_context_key(experiment_id: str) -> str:
    """Graph key of the trial context of ``experiment_id``."""
    return f"daskperiment-trial-{experiment_id}"


def run_step(context: TrialContext | None, spec: StepSpec, *args: Any, **kwargs: Any) -> Any:
    """The task of one step call: run the function and record what it produced.

    Outside a trial (``context`` None: a dry run of an intermediate step) the
    function runs and nothing is recorded.
    """
    recorder = StepRecorder(context)
    buffer = local_buffer(context) if context is not None else None
    if context is not None and buffer is None:
        seeding.seed_everything(seeding.step_seed(context.seed, spec.name))
    records = RecordBatch()
    calls = []
    reset = active_step.set(recorder)
    try:
        output = spec.func(*args, **kwargs)
        if context is not None:
            if spec.persist:
                records.persisted.append(_persisted(context.trial_id, spec.name, output))
            call = hash_call(
                spec.name, spec.code_digest, args, kwargs, output,
                describe_arguments(args, kwargs),
            )
            if call is not None:
                calls.append(call)
        return output
    finally:
        active_step.reset(reset)
        records.metrics = recorder.metric_points()
        if buffer is not None:
            with buffer.lock:
                buffer.records.extend(records)
                buffer.step_calls.extend(calls)
        elif context is not None:
            _flush_remote(context, records, calls)


def _persisted(trial_id: int, step: str, output: Any) -> PersistedValue:
    try:
        payload = serialization.dumps(output)
    except TypeError as exc:
        raise PersistError(
            f"the output of persisted step {step!r} cannot be stored: {exc}. Return a value "
            "pickle or cloudpickle can serialize, or decorate the step with @ex instead of "
            "@ex.persist"
        ) from None
    return PersistedValue(trial_id, step, payload)


def _flush_remote(context: TrialContext, records: RecordBatch, calls: list) -> None:
    """Write a step's records from a worker process straight to the store (one batch)."""
    backend = context.backend
    known = backend.load_step_outputs([call.input_key for call in calls])
    records.step_outputs.extend(call.record() for call in warn_impure(calls, known))
    if records:
        backend.write_batch(records)
