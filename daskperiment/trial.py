"""The output of an ``@ex.result`` step: computing it runs and records one trial."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from daskperiment.graph import StepCall, StepDelayed

if TYPE_CHECKING:
    from daskperiment.tracker import Tracker


class TrialResult(StepDelayed):
    """The output of an ``@ex.result`` step: computing it runs and records one trial.

    It is a ``dask.delayed`` object whose :meth:`compute` runs the graph as a
    trial of its experiment; :meth:`Experiment.run`, :meth:`Experiment.submit`
    and :meth:`Experiment.sweep` run it with explicit parameter values.
    """

    __slots__ = ("_tracker",)

    def __init__(self, tracker: "Tracker", call: StepCall) -> None:
        super().__init__(call)
        self._tracker = tracker

    @property
    def experiment_id(self) -> str:
        """Id of the experiment whose trials this result records."""
        return self._tracker.experiment_id

    def check_active(self) -> None:
        """Raise :class:`~daskperiment.errors.ExperimentReinitializedError` if its experiment was
        re-initialised (by ``Experiment(id, ...)``) since this result was built."""
        self._tracker.check_active()

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Names of the parameters the result depends on, in the order its steps use them."""
        return self.call.plan().parameters

    def compute(self, seed: int | None = None, cache: bool = True, **kwargs: Any) -> Any:  # type: ignore[override]
        """Run one trial with the current parameter values and return its result.

        Parameters
        ----------
        seed : int, optional
            Seed for ``random`` and ``numpy.random``; defaults to the
            experiment's seed, else a generated one (logged and recorded).
        cache : bool, default True
            False computes the cached steps again instead of loading them
            (see :meth:`Experiment.run`).
        **kwargs
            ``scheduler`` (as for :func:`dask.compute`, e.g. ``"processes"``)
            and keyword arguments of that scheduler (e.g. ``num_workers``);
            with a ``dask.distributed`` client active the trial runs on it.

        Raises
        ------
        TypeError
            For ``sync=False``: use :meth:`Experiment.submit` for a trial that
            does not block.
        Exception
            Whatever a step raised: the trial is recorded as failed first.
        """
        if kwargs.pop("sync", True) is False:
            raise TypeError(
                "compute(sync=False) would not wait for the trial, and an unrecorded future is "
                "no trial: use ex.submit(result, ...), which returns a future of the trial's "
                "result and records the trial when it finishes"
            )
        return self._tracker.run(self.call, {}, seed, None, kwargs, cache=cache)

    def __repr__(self) -> str:
        return f"Delayed({self.key!r})"
