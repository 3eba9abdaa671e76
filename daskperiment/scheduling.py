"""Handing trial graphs to the scheduler ``dask.compute`` would pick, and hearing back.

Local schedulers (synchronous, threads, processes) report each finished trial
through dask's callback interface while the rest of the graph runs; a
``dask.distributed`` client reports through its futures.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
from dask.base import get_scheduler, named_schedulers
from dask.callbacks import Callback

TrialDone = Callable[[str, Any, "BaseException | None"], None]
"""Called with a trial's key and its outcome, or the error that kept it from finishing."""

_COMPUTE_ONLY_OPTIONS = ("optimize_graph", "traverse")


def distributed_client(get: Callable) -> Any | None:
    """The ``dask.distributed`` client whose ``get`` this is, else None."""
    owner = getattr(get, "__self__", None)
    if owner is None or not type(owner).__module__.startswith("distributed"):
        return None
    return owner


def _no_distributed_client() -> bool:
    """Whether ``dask.compute`` would find no ``dask.distributed`` client (cheaply, for every trial).

    None exists without ``distributed`` imported; else dask takes the client
    of the worker running the current task, or the current (or latest
    started, not closed) client, and finds none when both look-ups fail.
    """
    if sys.modules.get("distributed") is None:  # never imported, or imports of it refused
        return True
    from distributed import default_client, get_worker

    for look_up in (get_worker, default_client):
        try:
            look_up()
        except ValueError:
            continue
        return False
    return True


@dataclass
class Runner:
    """The scheduler of a computation and its keyword arguments.

    Attributes
    ----------
    get : callable
        The scheduler's ``get``.
    options : dict
        Its keyword arguments (e.g. ``num_workers``).
    client : distributed.Client or None
        The client, when the scheduler is a ``dask.distributed`` cluster.
    """

    get: Callable
    options: dict[str, Any] = field(default_factory=dict)
    client: Any = None

    @classmethod
    def choose(cls, scheduler: Any = None, options: dict[str, Any] | None = None) -> "Runner":
        """The scheduler ``dask.compute(..., scheduler=scheduler, **options)`` would use.

        Without ``dask.distributed`` imported no client can exist, so the
        look-up for one (which imports it, and numpy: half a second) is
        skipped; so it is for a local scheduler named (``"sync"``,
        ``"threads"``, ``"processes"``, ...), which dask picks by name
        whether a client exists or not. Otherwise a client is looked for at
        every trial (one may have been started since the last), as dask
        looks for it but without parsing its connection timeout.
        """
        options = {k: v for k, v in (options or {}).items() if k not in _COMPUTE_ONLY_OPTIONS}
        scheduler = options.pop("scheduler", scheduler)
        configured = dask.config.get("scheduler", None)
        named = scheduler if scheduler is not None else configured
        if isinstance(named, str) and named.lower() in named_schedulers:
            return cls(named_schedulers[named.lower()], options)
        if scheduler is None and not configured and _no_distributed_client():
            return cls(dask.threaded.get, options)
        get = get_scheduler(scheduler=scheduler)
        if get is None:  # dask's own default for delayed objects
            get = dask.threaded.get
        return cls(get, options, distributed_client(get))

    def run(
        self,
        graph: dict[str, Any],
        trial_keys: Sequence[str],
        on_done: TrialDone,
        extra_keys: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Compute ``graph``, calling ``on_done`` as each trial finishes (in this thread).

        Returns the values of ``extra_keys``. An error of the scheduler itself
        (not of a step: steps' errors are in the outcomes) is reported for every
        trial not finished yet, then raised when it is not an ``Exception``.
        """
        if self.client is not None:
            return self._run_on_cluster(graph, trial_keys, on_done, extra_keys)
        pending = set(trial_keys)

        def posttask(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            if key in pending:
                pending.discard(key)
                on_done(key, result, None)

        # Callbacks as dask's local schedulers take them: (start, start_state,
        # pretask, posttask, finish); those active in a `with` block still run.
        callbacks = [(None, None, None, posttask, None), *Callback.active, *self.options.get("callbacks", ())]
        options = {**self.options, "callbacks": callbacks}
        # Ask for the trials' keys too: a graph culled to the extra keys alone would skip them.
        try:
            values = self.get(graph, [*trial_keys, *extra_keys], **options)
        except BaseException as exc:
            _report_unfinished(pending, on_done, exc)
            raise
        return dict(zip(extra_keys, values[len(trial_keys):]))

    def _run_on_cluster(
        self, graph: dict[str, Any], trial_keys: Sequence[str], on_done: TrialDone, extra_keys: Sequence[str]
    ) -> dict[str, Any]:
        from distributed import as_completed

        futures = self.client.get(graph, [*trial_keys, *extra_keys], sync=False, **self.options)
        by_future = dict(zip(futures, [*trial_keys, *extra_keys]))
        pending = set(trial_keys)
        try:
            for future in as_completed(futures[: len(trial_keys)]):
                key = by_future[future]
                pending.discard(key)
                error = future.exception()
                on_done(key, None if error else future.result(), error)
                future.release()
            return dict(zip(extra_keys, self.client.gather(futures[len(trial_keys):])))
        except BaseException as exc:
            _report_unfinished(pending, on_done, exc)
            raise
        finally:
            for future in futures:
                future.release()

    def submit(self, graph: dict[str, Any], trial_key: str, on_done: TrialDone) -> None:
        """Start computing ``graph`` on the cluster; ``on_done`` is called from another thread."""
        (future,) = self.client.get(graph, [trial_key], sync=False, **self.options)

        def finished(done: Any) -> None:
            error = done.exception() if done.status != "cancelled" else RuntimeError("cancelled")
            try:
                on_done(trial_key, None if error else done.result(), error)
            finally:
                done.release()

        future.add_done_callback(finished)


def _report_unfinished(pending: Iterable[str], on_done: TrialDone, error: BaseException) -> None:
    for key in sorted(pending):
        on_done(key, None, error)
