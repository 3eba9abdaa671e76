"""Steps: decorated functions whose calls become nodes of an experiment's graph."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Callable

from daskperiment.execution import StepSpec
from daskperiment.graph import StepCall, StepDelayed
from daskperiment.options import checked_flag

if TYPE_CHECKING:
    from daskperiment.experiment import Experiment
    from daskperiment.tracker import Tracker

__all__ = ["Step", "StepSpec", "check_cache_options"]


def check_cache_options(cache: object, seeded: object) -> dict[str, bool]:
    """The ``cache`` and ``seeded`` options of a step decorator, once checked.

    Raises
    ------
    TypeError
        When either is not a bool.
    ValueError
        For ``seeded=True`` without ``cache=True`` (it says what the cache matches on).
    """
    cache = checked_flag("cache", cache, "@ex(cache=True)")
    seeded = checked_flag("seeded", seeded, "@ex(cache=True, seeded=True)")
    if seeded and not cache:
        raise ValueError(
            "seeded=True says that the step's cached output depends on the trial's seed; it "
            "needs cache=True, e.g. @ex(cache=True, seeded=True)"
        )
    return {"cache": cache, "seeded": seeded}


class Step:
    """A function decorated with ``@ex``, ``@ex.persist`` or ``@ex.result``.

    Calling it does not run the function: it returns a ``dask.delayed`` object
    (for ``@ex.result``, a :class:`~daskperiment.trial.TrialResult`) whose
    computation runs it inside a trial.
    """

    def __init__(
        self, experiment: "Experiment", tracker: "Tracker", func: Callable, *, persist: bool,
        result: bool, cache: bool = False, seeded: bool = False,
    ) -> None:
        if isinstance(func, Step):
            persist, result = persist or func.persist, result or func.is_result
            cache, seeded = cache or func.cache, seeded or func.seeded
            func = func.func
        if not callable(func):
            raise TypeError(f"@ex decorates functions, not {type(func).__name__} objects")
        self.experiment = experiment
        self.func = func
        self.persist = persist
        self.is_result = result
        self.cache = cache
        self.seeded = seeded
        self.name: str = getattr(func, "__name__", type(func).__name__)
        self._tracker = tracker
        code_digest = tracker.code.register_step(self.name, func)
        self._spec = StepSpec(self.name, func, persist, code_digest, result, cache, seeded)
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._tracker.check_active()
        call = StepCall(self._spec, args, kwargs, self._tracker.parameters.name_of)
        if not self.is_result:
            return StepDelayed(call)
        from daskperiment.script import run_script_trial, script_mode_active
        from daskperiment.trial import TrialResult

        result = TrialResult(self._tracker, call)
        # `python script.py a=1`: run the trial now, unless the experiment opted out
        if self.experiment.script_mode and script_mode_active(self.func):
            return run_script_trial(result, self.experiment)
        return result

    def __repr__(self) -> str:
        kind = "result" if self.is_result else "persist" if self.persist else "step"
        return f"<daskperiment {kind} {self.name} of experiment {self.experiment.id!r}>"
