"""Recording finished trials: one batch per call, identical content stored once."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping, Sequence, TypeVar

from daskperiment import serialization
from daskperiment.artifactstore import ArtifactStore
from daskperiment.backend.base import Backend
from daskperiment.capture import OUTPUT
from daskperiment.codecontext import code_diff
from daskperiment.collector import diff_environments, diff_packages, environment_future
from daskperiment.purity import StepCall, warn_impure
from daskperiment.envblob import environment_blob, load_environment
from daskperiment.outcome import TrialOutcome
from daskperiment.status import outcome_status
from daskperiment.records import (
    ArtifactRecord,
    Blob,
    MetricPoint,
    PersistedValue,
    RecordBatch,
    TrialRecord,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
SOURCE_TRIALS_KEPT = 4096
"""Trials whose artifact records are kept in memory to copy them to the trials loading their steps."""
_UNREAD = object()


@dataclass(frozen=True)
class FinishedTrial:
    """A finished trial and what it is recorded with.

    Attributes
    ----------
    outcome : TrialOutcome
        What its steps returned and saved (successful when ``outcome.error`` is None).
    parameters : mapping
        Its parameter values.
    seed : int
        Its seed.
    process_time : float
        Seconds it took.
    code : (str, str)
        Digest and text of the experiment's code.
    sweep_id : str or None
        The sweep it belongs to.
    """

    outcome: TrialOutcome
    parameters: Mapping[str, Any]
    seed: int
    process_time: float
    code: tuple[str, str]
    sweep_id: str | None = None


class TrialWriter:
    """Writes the trials of one experiment to its store, and warns about what changed.

    Each call sends one batch: the trials' records, what their steps saved,
    and the code and environment blobs only when this process has not sent
    them yet. It warns when the code differs from the previous trial's, when the
    environment differs from the last recorded trial's (checked once per
    process), and when a step returned a different output for the same inputs.
    """

    def __init__(self, backend: Backend, artifacts: ArtifactStore) -> None:
        self._backend = backend
        self._artifacts = artifacts
        self._lock = threading.Lock()
        self._memo_lock = threading.Lock()
        self._sent_digests: set[str] = set()
        self._sent_generation = backend.generation
        self._previous_code: tuple[int, str, str] | None = None
        self._environment: Blob | None = None
        self._last_before: TrialRecord | None | object = _UNREAD
        self._source_artifacts: OrderedDict[int, list[ArtifactRecord]] = OrderedDict()

    def write(
        self,
        outcome: TrialOutcome,
        *,
        parameters: Mapping[str, Any],
        seed: int,
        process_time: float,
        code: tuple[str, str],
        sweep_id: str | None = None,
    ) -> None:
        """Record one finished trial (successful when ``outcome.error`` is None)."""
        self.write_all([FinishedTrial(outcome, parameters, seed, process_time, code, sweep_id)])

    def write_all(self, finished: Sequence[FinishedTrial]) -> None:
        """Record finished trials, in order, in one batch (one transaction or round trip).

        A trial whose result cannot be serialized does not keep the others
        from being recorded: the batch is then written trial by trial.
        """
        if not finished:
            return
        kept = [self._artifact_records(trial.outcome) for trial in finished]  # reads and uploads: unlocked
        with self._lock:
            environment = self._environment_blob()
            self._forget_lost_blobs()
            sent = set(self._sent_digests)
            parts = [self._records_of(trial, files, environment, sent) for trial, files in zip(finished, kept)]
            calls = [call for _, trial_calls in parts for call in trial_calls]
            outputs = RecordBatch(step_outputs=[call.record() for call in calls])
            for trial in finished:
                self._warn_code_change(trial.outcome.trial_id, trial.code)
                self._previous_code = (trial.outcome.trial_id, *trial.code)
            generation = self._backend.generation
            # the store returns the outputs it held for these calls' inputs: no read of its own
            warn_impure(calls, self._write([part for part, _ in parts], outputs))
            if self._backend.generation != generation:  # the store lost its records meanwhile
                self._forget_lost_blobs()
                sent = self._resend_blobs(finished, environment, [part for part, _ in parts])
            self._sent_digests = sent
            for part, _ in parts:
                self._remember_artifacts(part.trials[0].trial_id, part.artifacts)

    def _forget_lost_blobs(self) -> None:
        """Forget which blobs were sent once the store has lost its records (they must go again)."""
        if self._backend.generation != self._sent_generation:
            self._sent_digests.clear()
            self._sent_generation = self._backend.generation

    def _resend_blobs(
        self, finished: Sequence[FinishedTrial], environment: Blob | None, parts: list[RecordBatch]
    ) -> set[str]:
        """Send the trials' blobs their batch left out (the store lost them); return the digests sent."""
        blobs = {trial.code[0]: Blob(trial.code[0], trial.code[1].encode("utf-8")) for trial in finished}
        if environment is not None:
            blobs[environment.digest] = environment
        for trial in finished:
            for step in trial.outcome.steps:
                if step.environment is not None and step.environment_blob is not None:
                    blobs[step.environment] = Blob(step.environment, step.environment_blob)
        written = {blob.digest for part in parts for blob in part.blobs}
        missing = [blob for digest, blob in blobs.items() if digest not in written]
        if missing:
            self._backend.write_batch(RecordBatch(blobs=missing))
        return written | {blob.digest for blob in missing}

    def _records_of(
        self, finished: FinishedTrial, artifacts: list[ArtifactRecord], environment: Blob | None, sent: set[str]
    ) -> tuple[RecordBatch, list[StepCall]]:
        """What one trial stores (with its ``artifacts``), and its steps' calls.

        Blobs whose digest is in ``sent`` are left out; those added are added to ``sent``.
        """
        outcome = finished.outcome
        trial_id, error = outcome.trial_id, outcome.error
        batch = RecordBatch(artifacts=artifacts)
        calls: list[StepCall] = []
        workers: dict[str, bytes | None] = {}
        cached = tuple((step.step, step.cached_from) for step in outcome.steps if step.cached_from is not None)
        make_point = MetricPoint._make
        for step in outcome.steps:
            points = step.metrics[step.flushed:] if step.flushed else step.metrics  # not written again
            batch.metrics += [make_point((trial_id, *point)) for point in points]
            if step.persisted is not None:
                batch.persisted.append(PersistedValue(trial_id, step.step, step.persisted))
            if step.cache_entry is not None:
                batch.cache_entries.append(step.cache_entry)
            if step.call is not None:
                calls.append(step.call)
            if step.environment is not None and workers.get(step.environment) is None:
                workers[step.environment] = step.environment_blob
        code_digest, code_text = finished.code
        if code_digest not in sent:
            batch.blobs.append(Blob(code_digest, code_text.encode("utf-8")))
        if environment is not None and environment.digest not in sent:
            batch.blobs.append(environment)
        sent.update(blob.digest for blob in batch.blobs)
        worker_blobs = self._worker_blobs(workers, environment, sent)
        batch.blobs.extend(worker_blobs)
        sent.update(blob.digest for blob in worker_blobs)
        batch.trials.append(
            TrialRecord(
                trial_id=trial_id,
                parameters=finished.parameters,
                result=outcome.result if error is None else None,
                result_type=serialization.type_name(outcome.result) if error is None else "",
                success=error is None,
                finished=time.time(),
                process_time=finished.process_time,
                description=None if error is None else describe_error(error),
                seed=finished.seed,
                code_digest=code_digest,
                environment_digest=environment.digest if environment else None,
                sweep_id=finished.sweep_id,
                worker_environment_digests=tuple(
                    sorted(d for d in workers if environment is None or d != environment.digest)
                ),
                cached_steps=cached,
                status=outcome_status(error),
            )
        )
        return batch, calls

    def _artifact_records(self, outcome: TrialOutcome) -> list[ArtifactRecord]:
        """The files the trial kept: its steps', those of the trials it loaded steps from, its output.

        Reads and uploads made here never keep the trial from being recorded.
        """
        trial_id = outcome.trial_id
        records = [
            ArtifactRecord(trial_id, kept.name, kept.path, kept.digest, kept.size, step.step)
            for step in outcome.steps
            for kept in step.artifacts
        ]
        for step in outcome.steps:
            if step.cached_from is not None:
                earlier = self._artifacts_of(step.cached_from, step.step)
                records.extend(replace(r, trial_id=trial_id) for r in earlier if r.step == step.step)
        printed = "".join(step.output for step in outcome.steps)
        if printed:
            try:
                content = printed.encode("utf-8", "backslashreplace")
                digest = self._artifacts.put_bytes(content)
            except Exception as exc:  # the store of artifacts is unreachable
                logger.warning("the output of trial %d was not kept: %s", trial_id, exc)
            else:
                records.append(ArtifactRecord(trial_id, OUTPUT, "", digest, len(content), ""))
        return records

    def _artifacts_of(self, source: int, step: str) -> list[ArtifactRecord]:
        """The artifact records of trial ``source`` (read once: a recorded trial's never change).

        Records are written with their trial, so a trial that has some has all
        of them; those of trials this writer recorded are known without a read.
        """
        with self._memo_lock:
            known = self._source_artifacts.get(source)
        if known is None:
            known = self._read_quietly(
                f"copy the artifacts of step {step} from trial {source}",
                lambda: self._backend.load_artifacts(source),
            )
            if not known:  # none, or the source trial is not recorded yet: ask again next time
                return []
            self._remember_artifacts(source, known)
        return known

    def _remember_artifacts(self, trial_id: int, records: list[ArtifactRecord]) -> None:
        with self._memo_lock:
            self._source_artifacts[trial_id] = records
            self._source_artifacts.move_to_end(trial_id)
            while len(self._source_artifacts) > SOURCE_TRIALS_KEPT:
                self._source_artifacts.popitem(last=False)

    def _worker_blobs(
        self, workers: dict[str, bytes | None], environment: Blob | None, sent: set[str]
    ) -> list[Blob]:
        """Blobs of worker environments not in ``sent``; a WARNING for each that differs from ours."""
        blobs = []
        for digest, content in workers.items():
            if content is None or digest in sent:
                continue
            blob = Blob(digest, content)
            blobs.append(blob)
            if environment is not None and digest != environment.digest:
                logger.warning(
                    "dask workers run in another environment than this process (trial steps "
                    "are recorded with theirs):\n%s",
                    diff_environments(
                        load_environment(environment), load_environment(blob),
                        old_label="this process", new_label="dask worker",
                    ),
                )
        return blobs

    def _write(self, parts: list[RecordBatch], outputs: RecordBatch) -> dict[str, str]:
        """Write the trials' ``parts`` and the step ``outputs`` in one batch.

        Returns the output hashes the store held for the inputs of ``outputs``
        before (see :meth:`Backend.write_batch`). Stores serialize a whole
        batch before writing any of it, so a refused batch left nothing
        behind. When a trial's result cannot be serialized, each trial is then
        written on its own, such a result as its repr.
        """
        batch = RecordBatch()
        for part in parts:
            batch.extend(part)
        batch.extend(outputs)
        try:
            return self._backend.write_batch(batch)
        except TypeError:
            if all(_serializable(part.trials[0].result) for part in parts):
                raise
            for part in parts:
                self._write_alone(part)
            return self._backend.write_batch(outputs) if outputs else {}

    def _write_alone(self, part: RecordBatch) -> None:
        (trial,) = part.trials
        if not _serializable(trial.result):
            logger.warning(
                "the result of trial %d (a %s) cannot be serialized; its repr is recorded instead "
                "(a placeholder when repr() fails)",
                trial.trial_id,
                trial.result_type,
            )
            part.trials[0] = replace(trial, result=_shown(trial.result, repr))
        self._backend.write_batch(part)

    def _environment_blob(self) -> Blob | None:
        if self._environment is None:
            try:
                blob = environment_blob(environment_future().result())
            except Exception as exc:  # never lose a trial for want of an environment
                logger.warning("the environment could not be captured: %s", exc)
                return None
            self._warn_environment_change(blob)
            self._environment = blob
        return self._environment

    def _last_recorded(self) -> TrialRecord | None:
        """The last trial recorded before this process's first one (read once)."""
        if self._last_before is _UNREAD:
            self._last_before = self._read_quietly(
                "compare the code and environment with the last trial's", self._read_last_recorded
            )
        return self._last_before  # type: ignore[return-value]

    def _read_last_recorded(self) -> TrialRecord | None:
        last = self._backend.last_trial_id()
        records = self._backend.load_trials([last]) if last else []
        return records[0] if records else None

    def _read_quietly(self, what: str, read: Callable[[], T]) -> T | None:
        """``read()`` (made to ``what``); None and a WARNING when it fails.

        Reads made for a warning or a copy must never keep a trial from being
        written (or spooled, when a server went down during the trial), whether
        the store cannot answer or what it holds cannot be read.
        """
        try:
            return read()
        except Exception as exc:
            logger.warning("could not %s: %s", what, describe_error(exc))
            return None

    def _warn_code_change(self, trial_id: int, code: tuple[str, str]) -> None:
        previous = self._previous_code
        if previous is None:
            last = self._last_recorded()
            text = self._read_quietly(
                "compare the code with the last trial's", lambda: self._code_text(last.code_digest)
            ) if last else None
            if last is None or text is None:
                return
            previous = (last.trial_id, last.code_digest, text)
        if previous[1] != code[0]:
            logger.warning(
                "Code context has been changed since trial %d:\n%s",
                previous[0],
                code_diff(previous[2], code[1], f"trial {previous[0]}", f"trial {trial_id}"),
            )

    def _warn_environment_change(self, blob: Blob) -> None:
        """Warn when this process's environment differs from the last recorded trial's.

        Changed packages are warned about as 0.5 did: ``Installed Python
        packages have been changed``, then one WARNING per package line
        (``-pandas 0.23.4 (…)``, ``+pandas 0.24.0 (…)``); any other change
        as one WARNING with the diff of the other categories.
        """
        last = self._last_recorded()
        if last is None or last.environment_digest in (None, blob.digest):
            return
        diffs = self._read_quietly(
            "compare the environment with the last trial's", lambda: self._environment_diffs(last, blob)
        )
        if diffs is None:
            return
        packages, rest = diffs
        if packages:
            logger.warning("Installed Python packages have been changed (since trial %d)", last.trial_id)
            for line in packages:
                logger.warning("%s", line)
        if rest:
            logger.warning("Environment has been changed since trial %d:\n%s", last.trial_id, rest)

    def _code_text(self, digest: str) -> str | None:
        """The code stored under ``digest``, if any."""
        blob = self._backend.load_blob(digest)
        return None if blob is None else blob.content.decode("utf-8")

    def _environment_diffs(self, last: TrialRecord, blob: Blob) -> tuple[list[str], str] | None:
        """How the environment ``blob`` differs from trial ``last``'s: its package lines and the
        diff of its other categories (None when that trial's environment is not stored)."""
        old = self._backend.load_blob(last.environment_digest)
        if old is None:
            return None
        before, now = load_environment(old), load_environment(blob)
        rest = diff_environments(
            before, now, old_label=f"trial {last.trial_id}", new_label="this process", skip=("packages",)
        )
        return diff_packages(before, now), rest


def describe_error(error: BaseException) -> str:
    """An error as recorded in the history, e.g. ``ZeroDivisionError(division by zero)``.

    An error whose ``str()`` raises is described by a placeholder naming what failed.
    """
    return f"{type(error).__name__}({_shown(error, str)})"


def _shown(value: Any, text: Callable[[Any], str]) -> str:
    """``text(value)`` (``str`` or ``repr``), or a placeholder naming the type when that raises."""
    try:
        return text(value)
    except Exception as exc:
        return (
            f"<{serialization.type_name(value)} object: {text.__name__}() raised "
            f"{type(exc).__name__}>"
        )


def _serializable(value: Any) -> bool:
    try:
        serialization.dumps(value)
    except Exception:
        return False
    return True
