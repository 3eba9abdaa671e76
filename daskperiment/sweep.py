"""Sweeps: many trials of one result as one dask graph, steps shared by trials computed once.

A sweep's parameter sets come from a grid, an explicit list, or random
sampling. Its trials go to the scheduler as one graph (or, with
``max_in_flight``, as consecutive graphs of that many trials, outputs still
needed by later ones carried over); a step call whose code, inputs and seed
are the same in several trials has one content-addressed key, so it runs once
and every one of those trials records its output, metrics and persisted value.
Each trial is recorded as soon as it finishes; one that fails does not stop
the others.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from daskperiment import seeding
from daskperiment.errors import SweepError
from daskperiment.graph import Plan, StepCall, TrialSpec, node_keys_of, trial_graph
from daskperiment.groupcommit import GroupCommit
from daskperiment.history import history_frame
from daskperiment.options import checked_flag
from daskperiment.outcome import TrialOutcome
from daskperiment.progress import TrialProgressBar
from daskperiment.scheduling import Runner
from daskperiment.trialmessages import log_finished
from daskperiment.writer import FinishedTrial

if TYPE_CHECKING:
    import pandas as pd

    from daskperiment.tracker import Tracker

logger = logging.getLogger(__name__)

_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")


def grid_combinations(grid: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the values of ``grid`` (the last name varies fastest).

    Raises
    ------
    SweepError
        When a value is not a non-empty list of values.
    """
    names = list(grid)
    columns = [_values_of(name, grid[name], "grid") for name in names]
    return [dict(zip(names, combination)) for combination in itertools.product(*columns)]


def random_samples(space: Mapping[str, Any], n: object, sample_seed: int) -> list[dict[str, Any]]:
    """``n`` parameter sets drawn from ``space``, reproducible from ``sample_seed``.

    Parameters
    ----------
    space : mapping
        Per name, a ``scipy.stats`` frozen distribution (anything with
        ``rvs(random_state=...)``) or a list of values drawn uniformly.
    n : int
        Number of parameter sets.
    sample_seed : int
        Seed of the draws.
    """
    import numpy as np

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SweepError(f"random search needs n, the number of trials, as a positive integer (got n={n!r})")
    draws: dict[str, Any] = {}
    for name, source in space.items():
        if callable(getattr(source, "rvs", None)):
            continue
        draws[name] = _values_of(name, source, "random")
    rng = np.random.default_rng(sample_seed)
    samples = []
    for _ in range(n):
        sample = {}
        for name, source in space.items():
            if name in draws:
                sample[name] = draws[name][int(rng.integers(len(draws[name])))]
            else:
                sample[name] = _plain(source.rvs(random_state=rng))
        samples.append(sample)
    return samples


def _values_of(name: str, values: object, where: str) -> list[Any]:
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        raise SweepError(
            f"{where} values of parameter {name!r} must be a list of values to try, e.g. "
            f"{where}={{{name!r}: [0.1, 1.0]}} (got {values!r})"
        )
    listed = [_plain(value) for value in values]
    if not listed:
        raise SweepError(f"{where} values of parameter {name!r} are empty: give at least one value")
    return listed


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (they record and display as such)."""
    item = getattr(value, "item", None)
    return item() if callable(item) and getattr(value, "shape", None) == () else value


def parameter_sets(
    grid: Mapping[str, Any] | None,
    trials: Sequence[Mapping[str, Any]] | None,
    random: Mapping[str, Any] | None,
    n: int | None,
    sample_seed: int,
) -> list[dict[str, Any]]:
    """The parameter values of each trial of a sweep, from exactly one of its three forms."""
    given = [form for form, value in (("grid", grid), ("trials", trials), ("random", random)) if value is not None]
    if len(given) != 1:
        raise SweepError(
            "give exactly one of grid={'name': [values]}, trials=[{'name': value}, ...] or "
            f"random={{'name': distribution}} with n=...; got {', '.join(given) or 'none'}"
        )
    if n is not None and random is None:
        raise SweepError("n is the number of random trials: use it with random=...")
    if grid is not None:
        return grid_combinations(_mapping(grid, "grid"))
    if random is not None:
        return random_samples(_mapping(random, "random"), n, sample_seed)
    if isinstance(trials, (str, bytes, Mapping)) or not isinstance(trials, Iterable):
        raise SweepError(f"trials must be a list of dicts of parameter values, got {trials!r}")
    listed = [_mapping(values, "each of trials") for values in trials]
    if not listed:
        raise SweepError("trials is empty: give at least one dict of parameter values")
    return [dict(values) for values in listed]


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SweepError(f"{what} must be a dict of parameter names to values, got {value!r}")
    return value


def run_sweep(
    tracker: "Tracker",
    call: StepCall,
    *,
    grid: Mapping[str, Any] | None = None,
    trials: Sequence[Mapping[str, Any]] | None = None,
    random: Mapping[str, Any] | None = None,
    n: int | None = None,
    sample_seed: int | None = None,
    seed: int | None = None,
    per_trial_seeds: bool = False,
    max_in_flight: int | None = None,
    scheduler: Any = None,
    progress: bool = False,
    name: str | None = None,
    share: bool = True,
    cache: bool = True,
) -> "pd.DataFrame":
    """Run a sweep of trials of ``call`` and record each; return its rows of the history.

    Parameters
    ----------
    tracker : Tracker
        The experiment's tracker.
    call : StepCall
        The ``@ex.result`` step call.
    grid, trials, random, n, sample_seed
        The parameter sets (see :func:`parameter_sets`); values not given
        come from :meth:`Experiment.set_parameters` and the defaults.
        ``sample_seed`` defaults to the sweep's seed.
    seed : int, optional
        Seed of every trial (so that steps they share compute once);
        defaults to the experiment's, else a generated one.
    per_trial_seeds : bool, default False
        Give each trial its own seed, derived from ``seed`` (reproducible).
    max_in_flight : int, optional
        Send at most this many trials to the scheduler at once.
    scheduler : optional
        As for :func:`dask.compute`; the active ``dask.distributed`` client by default.
    progress : bool, default False
        Show trials done / total on stderr.
    name : str, optional
        Id of the sweep, shown in the history's ``Sweep`` column (default:
        the time and a random suffix).
    share : bool, default True
        Compute step calls shared by several trials once.
    cache : bool, default True
        Load cached steps (``@ex(cache=True)``) found in the step cache (one
        lookup for the whole sweep); False computes them again.

    Raises
    ------
    SweepError
        For a malformed sweep (nothing runs).
    ParameterNotDefinedError, ParameterUndefinedError
        For an unknown parameter, or one left without value (nothing runs).
    """
    tracker.check_active()
    sweep_id = make_sweep_id(name)
    try:
        checked_flag("cache", cache)
    except TypeError as exc:
        raise SweepError(str(exc)) from None
    if max_in_flight is not None and (isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1):
        raise SweepError(f"max_in_flight must be a positive integer or None, got {max_in_flight!r}")
    sweep_seed = seeding.choose_seed(seed, tracker.seed)
    sets = parameter_sets(grid, trials, random, n, sweep_seed if sample_seed is None else sample_seed)
    plan = call.plan()
    resolved = [tracker.parameters.resolve(plan.parameters, values) for values in sets]
    seeds = _trial_seeds(sweep_seed, len(resolved), per_trial_seeds)
    runner = Runner.choose(scheduler)
    code = tracker.code.snapshot()
    ids = tracker.start_trials(resolved, seeds, sweep_id)  # one batch: every trial shows as running
    specs = [TrialSpec(trial_id, values, s) for trial_id, values, s in zip(ids, resolved, seeds)]
    logger.info("Sweep %s: %d trials from id %d, seed %d", sweep_id, len(specs), ids[0], sweep_seed)
    recorder = _SweepRecorder(tracker, specs, code, sweep_id, TrialProgressBar(len(specs)) if progress else None)
    try:
        _compute(
            tracker, runner, plan, specs=specs, share=share, max_in_flight=max_in_flight,
            recorder=recorder, cache=cache,
        )
    except BaseException as exc:  # trials not handed to the scheduler yet end with its error
        recorder.abandon(exc)
        raise
    finally:
        recorder.close()
    frame = history_frame(tracker.backend.load_trials([spec.trial_id for spec in specs]))
    failed = int((~frame["Success"]).sum()) if len(frame) else 0
    (logger.warning if failed else logger.info)(
        "Sweep %s finished: %d trials, %d failed", sweep_id, len(frame), failed
    )
    return frame


def _compute(
    tracker: "Tracker", runner: Runner, plan: Plan, *, specs: list[TrialSpec], share: bool,
    max_in_flight: int | None, recorder: "_SweepRecorder", cache: bool,
) -> None:
    """Send the trials to the scheduler, one graph per ``max_in_flight`` of them."""
    token = uuid.uuid4().hex
    settings = tracker.graph_settings(runner, share)
    keys = node_keys_of(plan, specs, token, share)
    use = tracker.cache_use(plan, specs, cache)
    loaded = use.loaded_keys(plan, keys) if use is not None else set()  # loaded again, never carried
    size = max_in_flight or len(specs)
    chunks = [specs[start:start + size] for start in range(0, len(specs), size)]
    computed: dict[str, Any] = {}
    for index, chunk in enumerate(chunks):
        later = {key for spec in itertools.chain(*chunks[index + 1:]) for key in keys[spec.trial_id][:-1]}
        own = {key for spec in chunk for key in keys[spec.trial_id][:-1]}
        built = trial_graph(plan, chunk, settings, token, node_keys=keys, computed=computed, cache=use)
        recorder.expect(built.trial_keys)
        carried = sorted((own & later & built.graph.keys()) - computed.keys() - loaded)
        computed.update(runner.run(built.graph, list(built.trial_keys.values()), recorder.done, carried))
        computed = {key: value for key, value in computed.items() if key in later}
    if use is not None:
        tracker.cache.enforce_limit()


class _SweepRecorder:
    """Records the trials of a sweep as they finish, and shows the progress.

    Trials are written by a :class:`GroupCommit` thread: those that finish
    while a write is under way are recorded together, in one batch.
    """

    def __init__(
        self, tracker: "Tracker", specs: list[TrialSpec], code: tuple[str, str], sweep_id: str,
        bar: TrialProgressBar | None,
    ) -> None:
        self._tracker = tracker
        self._specs = {spec.trial_id: spec for spec in specs}
        self._code = code
        self._sweep_id = sweep_id
        self._bar = bar
        self._trial_of_key: dict[str, int] = {}
        self._started = time.perf_counter()
        self._commit: GroupCommit[FinishedTrial] = GroupCommit(
            tracker.writer.write_all, self._write_one_by_one, self._finished, f"daskperiment-sweep-{sweep_id}"
        )

    def expect(self, trial_keys: Mapping[int, str]) -> None:
        """Learn the keys of the trials about to be computed."""
        self._trial_of_key.update({key: trial_id for trial_id, key in trial_keys.items()})

    def done(self, key: str, outcome: TrialOutcome | None, error: BaseException | None) -> None:
        """Hand one finished trial over to be recorded."""
        self._hand_over(self._specs.pop(self._trial_of_key[key]), outcome, error)

    def abandon(self, error: BaseException) -> None:
        """Hand every trial not handed over yet to be recorded as failed with ``error`` (interrupted for Ctrl+C)."""
        for spec in list(self._specs.values()):
            self._hand_over(spec, None, error)
        self._specs.clear()

    def _hand_over(self, spec: TrialSpec, outcome: TrialOutcome | None, error: BaseException | None) -> None:
        if outcome is None:  # it ended without its steps' records: keep the points they saved
            self._tracker.settle([spec.trial_id])
            outcome = TrialOutcome(spec.trial_id, error=error)
        self._commit.put(
            FinishedTrial(
                outcome,
                parameters=spec.parameters,
                seed=spec.seed,
                process_time=outcome.duration if outcome.steps else time.perf_counter() - self._started,
                code=self._code,
                sweep_id=self._sweep_id,
            )
        )

    def _write_one_by_one(self, group: Sequence[FinishedTrial]) -> None:
        """After a group failed to be written: each trial on its own; a store error is logged."""
        for finished in group:
            try:
                self._tracker.writer.write_all([finished])
            except Exception:
                logger.exception(
                    "trial %d of sweep %s could not be recorded", finished.outcome.trial_id, self._sweep_id
                )

    def _finished(self, finished: FinishedTrial) -> None:
        self._tracker.end_trials([finished.outcome.trial_id])
        log_finished(finished.outcome, self._sweep_id)
        if self._bar is not None:
            self._bar.update(failed=finished.outcome.error is not None)
        finished.outcome.release()

    def close(self) -> None:
        """Record every trial handed over, and finish the progress display."""
        self._commit.close()
        if self._bar is not None:
            self._bar.close()


def _trial_seeds(seed: int, count: int, per_trial: bool) -> list[int]:
    if not per_trial:
        return [seed] * count
    import numpy as np

    return [int(s) for s in np.random.SeedSequence(seed).generate_state(count)]


def make_sweep_id(name: str | None) -> str:
    """The id of a sweep: ``name`` if valid, else the time and a random suffix.

    Raises
    ------
    SweepError
        For a name that could not name stored data.
    """
    if name is None:
        return f"{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise SweepError(
            f"invalid sweep name {name!r}: use 1 to 128 letters, digits, '_', '-', '.' or ':', "
            "starting with a letter or digit, e.g. 'lr-search-1'"
        )
    return name
