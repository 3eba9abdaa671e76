"""Adaptive search with Optuna: each trial Optuna proposes is a recorded daskperiment trial.

:func:`run_optimize` drives an Optuna study through its ask-and-tell
interface: it keeps up to ``n_parallel`` trials in flight with
:meth:`Tracker.submit` (so they run in parallel on the active dask scheduler or
cluster) and tells Optuna each result as it arrives. Every trial of the search
records the same sweep id, and each Optuna trial names its daskperiment trial
in the user attribute ``daskperiment_trial_id``.

Optuna is an optional dependency (``pip install 'daskperiment[optuna]'``),
imported only when a search runs.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, wait
from typing import TYPE_CHECKING, Any, Union

from daskperiment import seeding
from daskperiment.direction import validate_direction
from daskperiment.errors import OptimizeError
from daskperiment.progress import TrialProgressBar
from daskperiment.sweep import make_sweep_id

if TYPE_CHECKING:
    import optuna

    from daskperiment.experiment import Experiment
    from daskperiment.graph import StepCall
    from daskperiment.tracker import Tracker, TrialFuture

    Space = Union[Mapping[str, optuna.distributions.BaseDistribution], Callable[[optuna.Trial], Mapping[str, Any]]]

logger = logging.getLogger(__name__)

TRIAL_ID_ATTR = "daskperiment_trial_id"


# -- the search -------------------------------------------------------------------------
def run_optimize(
    experiment: "Experiment",
    tracker: "Tracker",
    call: "StepCall",
    space: "Space",
    n_trials: int,
    *,
    direction: str | None = None,
    study: "optuna.Study | None" = None,
    n_parallel: int = 2,
    seed: int | None = None,
    scheduler: Any = None,
    name: str | None = None,
    progress: bool = False,
) -> "optuna.Study":
    """Search the parameters of ``call`` with Optuna; record every trial; return the study.

    Parameters
    ----------
    experiment : Experiment
        The experiment, whose stored direction is read and written.
    tracker : Tracker
        Its tracker, which runs and records the trials.
    call : StepCall
        The ``@ex.result`` step call; its result must be a real number.
    space : mapping or callable
        Per parameter name an Optuna distribution (``FloatDistribution``,
        ``IntDistribution``, ``CategoricalDistribution``), or a function of
        an ``optuna.Trial`` returning the parameter values, drawn with
        ``trial.suggest_*`` (define-by-run). Parameters not in it keep the
        values set with :meth:`Experiment.set_parameters` and the defaults.
    n_trials : int
        Number of trials to run.
    direction : {"minimize", "maximize"}, optional
        Whether lower or higher results are better; stored with the
        experiment. Defaults to the stored direction, else that of ``study``,
        else ``"minimize"``.
    study : optuna.Study, optional
        The study to continue; by default a new in-memory study whose
        sampler is ``TPESampler(seed=seed)``.
    n_parallel : int, default 2
        Trials in flight at once.
    seed : int, optional
        Seed of every trial and of the new study's sampler; defaults to the
        experiment's, else a generated one (logged and recorded).
    scheduler : optional
        As for :func:`dask.compute`; the active ``dask.distributed`` client by default.
    name : str, optional
        Sweep id recorded by every trial of the search (default: the time
        and a random suffix); also the name of a new study.
    progress : bool, default False
        Show trials done / total on stderr.

    Returns
    -------
    optuna.Study
        The study; each of its trials has the user attribute
        ``daskperiment_trial_id``.

    Raises
    ------
    OptimizeError
        For a malformed space, a bad count, a study whose direction is not the
        wanted one (nothing runs), or a result that is not a real number
        (the search stops once the trials in flight are told).
    ValueError
        For a direction other than ``"minimize"`` or ``"maximize"``.
    ParameterNotDefinedError, ParameterUndefinedError
        For an unknown parameter, or one left without value.
    """
    optuna = _import_optuna()
    _check_count("n_trials", n_trials)
    _check_count("n_parallel", n_parallel)
    sweep_id = make_sweep_id(name)
    fixed = _fixed_space(optuna, space)
    if fixed is not None:  # an unknown name or a parameter without value: an error before anything runs
        tracker.parameters.resolve(call.plan().parameters, dict.fromkeys(fixed))
    search_seed = seeding.choose_seed(seed, tracker.seed)
    stored = experiment.get_direction()
    wanted = _direction(experiment.id, direction, stored, study)
    if study is None:
        study = optuna.create_study(
            direction=wanted, sampler=optuna.samplers.TPESampler(seed=search_seed), study_name=sweep_id
        )
    if stored != wanted:
        experiment.set_direction(wanted)
    logger.info(
        "Search %s: %d trials, %d in parallel, seed %d, %s the result", sweep_id, n_trials, n_parallel,
        search_seed, wanted,
    )
    search = _Search(
        optuna, study, tracker, call, space, fixed, sweep_id, search_seed, scheduler,
        TrialProgressBar(n_trials) if progress else None,
    )
    search.run(n_trials, n_parallel)
    return study


def _import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ImportError(
            "ex.optimize needs Optuna: pip install 'daskperiment[optuna]' (or pip install optuna)"
        ) from None
    return optuna


def _check_count(what: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptimizeError(f"{what} must be a positive integer, got {value!r}")


def _fixed_space(optuna: Any, space: object) -> dict[str, Any] | None:
    """``space`` as a dict of distributions; None for a define-by-run function."""
    if callable(space) and not isinstance(space, Mapping):
        return None
    example = "{'lr': optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}"
    if not isinstance(space, Mapping) or not space:
        raise OptimizeError(
            f"space must be a non-empty dict of parameter names to Optuna distributions, e.g. "
            f"{example}, or a function of an optuna.Trial returning the values; got {space!r}"
        )
    for parameter, distribution in space.items():
        if not isinstance(distribution, optuna.distributions.BaseDistribution):
            raise OptimizeError(
                f"space of parameter {parameter!r} must be an Optuna distribution (FloatDistribution, "
                f"IntDistribution, CategoricalDistribution), e.g. {example}; got {distribution!r}"
            )
    return dict(space)


def _direction(
    experiment_id: str, direction: str | None, stored: str | None, study: "optuna.Study | None"
) -> str:
    """The direction of the search: given, else stored, else the study's, else minimize."""
    given = validate_direction(direction) if direction is not None else None
    if study is None:
        return given or stored or "minimize"
    if len(study.directions) != 1:
        raise OptimizeError(
            f"study {study.study_name!r} has {len(study.directions)} objectives: ex.optimize needs a "
            "single-objective study (the @ex.result value is one number)"
        )
    own = study.direction.name.lower()
    wanted = given or stored or own
    if wanted != own:
        source = "given" if given else f"stored with experiment {experiment_id!r} (ex.set_direction)"
        raise OptimizeError(
            f"study {study.study_name!r} is set to {own} but the direction {source} is {wanted}: "
            f"create the study with direction={wanted!r}, or pass direction={own!r}"
        )
    return wanted


class _Search:
    """The ask-and-tell loop of one search, with up to ``n_parallel`` trials in flight."""

    def __init__(
        self, optuna: Any, study: "optuna.Study", tracker: "Tracker", call: "StepCall", space: "Space",
        fixed: dict[str, Any] | None, sweep_id: str, seed: int, scheduler: Any, bar: TrialProgressBar | None,
    ) -> None:
        self._optuna = optuna
        self._study = study
        self._tracker = tracker
        self._call = call
        self._space = space
        self._fixed = fixed
        self._sweep_id = sweep_id
        self._seed = seed
        self._scheduler = scheduler
        self._bar = bar
        self._in_flight: dict["TrialFuture", "optuna.Trial"] = {}
        self._failed = 0

    def run(self, n_trials: int, n_parallel: int) -> None:
        """Run ``n_trials`` trials; on an error, settle the trials in flight, then raise it."""
        asked = 0
        try:
            while asked < n_trials or self._in_flight:
                while asked < n_trials and len(self._in_flight) < n_parallel:
                    asked += 1
                    self._submit()
                done, _ = wait(list(self._in_flight), return_when=FIRST_COMPLETED)
                for future in sorted(done, key=lambda f: f.trial_id):
                    self._tell(future, strict=True)
        except BaseException as exc:
            self._abandon(wait_for_them=isinstance(exc, Exception))
            raise
        finally:
            if self._bar is not None:
                self._bar.close()
        (logger.warning if self._failed else logger.info)(
            "Search %s finished: %d trials, %d failed; best %s", self._sweep_id, n_trials, self._failed,
            self._best(),
        )

    def _submit(self) -> None:
        trial = self._study.ask(self._fixed)
        try:
            values = trial.params if self._fixed is not None else self._space(trial)
            if not isinstance(values, Mapping):
                raise OptimizeError(
                    f"the space function must return a dict of parameter values, e.g. "
                    f"{{'lr': trial.suggest_float('lr', 1e-4, 1e-1, log=True)}}; got {values!r}"
                )
            future = self._tracker.submit(
                self._call, values, self._seed, self._scheduler, {}, sweep_id=self._sweep_id
            )
        except BaseException:
            self._study.tell(trial, state=self._optuna.trial.TrialState.FAIL)
            raise
        trial.set_user_attr(TRIAL_ID_ATTR, future.trial_id)
        self._in_flight[future] = trial

    def _tell(self, future: "TrialFuture", *, strict: bool) -> None:
        """Tell Optuna how a finished trial went; ``strict`` raises for a result that is no number."""
        trial = self._in_flight.pop(future)
        fail = self._optuna.trial.TrialState.FAIL
        error = future.exception()
        if error is not None:
            logger.warning("trial %d of search %s failed: %r", future.trial_id, self._sweep_id, error)
            self._told(trial, None, fail)
            return
        value = future.result()
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            self._told(trial, None, fail)
            if strict:
                raise OptimizeError(
                    f"trial {future.trial_id} returned {value!r} (a {type(value).__name__}): ex.optimize "
                    "needs the @ex.result step to return a real number (int, float, numpy scalar)"
                )
            return
        if math.isnan(value):
            logger.warning("trial %d of search %s returned NaN: told as failed", future.trial_id, self._sweep_id)
            self._told(trial, None, fail)
            return
        self._told(trial, float(value), None)

    def _told(self, trial: "optuna.Trial", value: float | None, state: Any) -> None:
        self._study.tell(trial, value, state)
        failed = state is not None
        self._failed += failed
        if self._bar is not None:
            self._bar.update(failed=failed)

    def _abandon(self, *, wait_for_them: bool) -> None:
        """Settle the trials still in flight: wait and tell them, or tell them failed at once."""
        if wait_for_them:
            wait(list(self._in_flight))
        for future in sorted(self._in_flight, key=lambda f: f.trial_id):
            if future.done():
                self._tell(future, strict=False)
            else:
                self._told(self._in_flight.pop(future), None, self._optuna.trial.TrialState.FAIL)

    def _best(self) -> str:
        try:
            best = self._study.best_trial
        except ValueError:  # no trial completed
            return "none (no trial completed)"
        return f"trial {best.user_attrs.get(TRIAL_ID_ATTR)} with {best.value!r} at {best.params!r}"
