"""A store on a Redis server, shared by every process and machine that reaches it.

Keys of experiment ``<id>`` all start with ``daskperiment:<id>:`` (experiment
ids contain no ``:``)::

    next_trial_id            string   trial id counter (INCRBY)
    epoch                    string   random token made with the counter (see server.py)
    trials                   hash     trial id -> JSON trial document (a pickle before format 2)
    history                  zset     JSON array of the fields of a trial's document a history shows, score = trial id
    trial_tokens             hash     trial id -> token of the batch that wrote the trial
    trial_ids                zset     recorded trial ids (score = id)
    starts                   hash     trial id -> JSON start of a trial not recorded yet
    heartbeats               hash     trial id -> its last heartbeat (POSIX time)
    metric:<trial>:<key>     hash     chunk id -> packed (epoch, value, time) points
    metric_keys              set      keys of every saved metric
    metric_int_keys          set      keys of metrics that got int values
    metric_real_keys         set      keys of metrics that got other values
    persisted:<trial>        hash     step name -> output (serialization.dumps)
    step_outputs             hash     step input hash -> latest output hash (HSET)
    blobs                    hash     digest -> content (HSETNX)
    settings                 hash     setting name -> value (HSET: the last write wins)
    cache                    hash     cache key -> JSON entry (no payload, no time of use)
    cache_used               zset     cache keys, score = time of last use
    cache_payload:<key>      string   payload of a cache entry the store holds
    artifacts:<trial>        hash     JSON [name, path] -> JSON artifact record
    annotations              hash     trial id -> JSON {note, tags} of an annotated trial

and the set ``daskperiment:experiments`` lists the ids of the experiments
opened on the server. A batch is one Lua script, which checks the epoch and
that no other batch wrote its trials before running the batch's commands:
atomic, one round trip; it removes the starts of the trials it records. Trials
start by one script too: it advances the counter and stores the starts. Cache entries keep their payloads in keys of their own, so listing
entries never moves payloads.

The ``history`` sorted set holds, beside each trial document, its
:func:`~daskperiment.backend.codec.history_row` (the fields of
:data:`~daskperiment.backend.codec.HISTORY_FIELDS`, encoded as the document
holds them, the trial id first), scored by the trial id: written by the batch
that writes the document (replacing the trial's earlier row), removed by the
script that deletes it, it is all a history reads — a quarter of the
documents' size, in id order (``ZRANGE``), so the rows are decoded in the
order the table reads them. Trials written before it (or by an older
daskperiment) have no row: reading a history finds them by their ids and
writes their rows (see :meth:`RedisBackend.load_trial_columns`).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from hashlib import sha1
from itertools import islice, repeat
from operator import itemgetter, lt
from typing import Any, Mapping, Sequence
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from daskperiment import serialization
from daskperiment.backend.codec import (
    annotation_document,
    annotation_from_document,
    artifact_document,
    bulk_decoding,
    artifact_from_document,
    cache_entry_document,
    cache_entry_from_document,
    document_blob_digests,
    HISTORY_FIELDS,
    history_columns,
    history_row,
    is_history_row,
    metric_chunks,
    metric_kinds,
    metric_series,
    start_document,
    start_from_document,
    trial_document,
    trial_from_document,
)
from daskperiment.backend.base import Backend
from daskperiment.backend.server import (
    EpochChanged,
    ServerBackend,
    Transmitted,
    TrialsTaken,
    authentication_error,
    new_epoch,
    timeout_option,
)
from daskperiment.backend.uri import REDIS_SCHEMES, malformed, query_options, redact, scrub, split
from daskperiment.errors import BackendError, BackendURIError
from daskperiment.records import (
    Annotation,
    AnnotationEdit,
    ArtifactRecord,
    Blob,
    CacheEntry,
    Deletion,
    MetricSeries,
    PersistedValue,
    RecordBatch,
    TrialColumns,
    TrialRecord,
    TrialStart,
)

logger = logging.getLogger(__name__)

EXAMPLE = "redis://localhost:6379/0"
EXPERIMENTS_KEY = "daskperiment:experiments"

# ARGV: epoch key, expected epoch, count. Returns the new counter, or nil for another epoch.
_ALLOCATE = """
if redis.call('GET', ARGV[1]) ~= ARGV[2] then return nil end
return redis.call('INCRBY', ARGV[3], ARGV[4])
"""
# ARGV: epoch key, expected epoch, counter key, starts key, heartbeats key, count, then per
# start its heartbeat and document. Returns the new counter, or nil for another epoch.
_START = """
if redis.call('GET', ARGV[1]) ~= ARGV[2] then return nil end
local count = tonumber(ARGV[6])
local last = redis.call('INCRBY', ARGV[3], count)
for i = 1, count do
    local id = last - count + i
    redis.call('HSET', ARGV[5], id, ARGV[5 + 2 * i])
    redis.call('HSET', ARGV[4], id, ARGV[6 + 2 * i])
end
return last
"""
# ARGV: starts key, heartbeats key, time, trial ids. Beats only trials still started.
_BEAT = """
for i = 4, #ARGV do
    if redis.call('HEXISTS', ARGV[1], ARGV[i]) == 1 then redis.call('HSET', ARGV[2], ARGV[i], ARGV[3]) end
end
return 0
"""
# ARGV: epoch key, counter key, new epoch, floor. Returns the epoch.
_CLAIM = """
local epoch = redis.call('GET', ARGV[1])
if not epoch then
    epoch = ARGV[3]
    redis.call('SET', ARGV[1], epoch)
end
local counter = tonumber(redis.call('GET', ARGV[2]) or '0')
if counter < tonumber(ARGV[4]) then redis.call('SET', ARGV[2], ARGV[4]) end
return epoch
"""
# ARGV: epoch key, expected epoch, trial token key, token, step outputs key, blobs key, trial
# count n, n trial ids, input key count k, k step input keys, digest count m, m blob digests,
# then the commands, each as its argument count followed by its arguments.
# Returns {0} for another epoch, {1, ids...} for trial ids other batches hold, once written
# {2, the k output hashes held before (nil where none), the m digests of blobs held (1) or not (0)}.
_WRITE = """
if redis.call('GET', ARGV[1]) ~= ARGV[2] then return {0} end
local n = tonumber(ARGV[7])
local taken = {1}
for i = 8, 7 + n do
    local holder = redis.call('HGET', ARGV[3], ARGV[i])
    if holder and holder ~= ARGV[4] then table.insert(taken, ARGV[i]) end
end
if #taken > 1 then return taken end
local k = tonumber(ARGV[8 + n])
local m = tonumber(ARGV[9 + n + k])
local answer = {2}
for j = 9 + n, 8 + n + k do answer[#answer + 1] = redis.call('HGET', ARGV[5], ARGV[j]) end
local i = 10 + n + k + m
while i <= #ARGV do
    local size = tonumber(ARGV[i])
    redis.call(unpack(ARGV, i + 1, i + size))
    i = i + size + 1
end
for j = 8, 7 + n do redis.call('HSET', ARGV[3], ARGV[j], ARGV[4]) end
for j = 10 + n + k, 9 + n + k + m do answer[#answer + 1] = redis.call('HEXISTS', ARGV[6], ARGV[j]) end
return answer
"""

# -- deleting trials (issue 12) ---------------------------------------------------------------
# ARGV: key prefix; n, then n trial ids; m, then m blob digests the trials refer to; k, then k
# artifact digests they kept. Deletes the trials (recorded, or only started) and their records, then the blobs and (listed)
# metric keys no remaining trial uses. Returns {deleted ids, removed blobs, orphan artifact digests}.
_DELETE = """
local prefix = ARGV[1]
local function list_at(start)
    local count = tonumber(ARGV[start])
    local items = {}
    for i = start + 1, start + count do items[#items + 1] = ARGV[i] end
    return items, start + count + 1
end
local ids, next_at = list_at(2)
local blobs, after_blobs = list_at(next_at)
local artifacts = list_at(after_blobs)
local keys = redis.call('SMEMBERS', prefix .. 'metric_keys')
local deleted, touched = {}, {}
for _, id in ipairs(ids) do
    local recorded = redis.call('HDEL', prefix .. 'trials', id)
    redis.call('ZREMRANGEBYSCORE', prefix .. 'history', id, id)
    local started = redis.call('HDEL', prefix .. 'starts', id)  -- running or killed: not recorded yet
    if recorded + started > 0 then deleted[#deleted + 1] = id end
    redis.call('HDEL', prefix .. 'heartbeats', id)
    redis.call('HDEL', prefix .. 'trial_tokens', id)
    redis.call('HDEL', prefix .. 'annotations', id)
    redis.call('ZREM', prefix .. 'trial_ids', id)
    redis.call('DEL', prefix .. 'persisted:' .. id, prefix .. 'artifacts:' .. id)
    for _, key in ipairs(keys) do
        if redis.call('DEL', prefix .. 'metric:' .. id .. ':' .. key) == 1 then touched[key] = true end
    end
end
if #deleted > 0 then redis.call('INCR', prefix .. 'deletions') end
local remaining = redis.call('ZRANGE', prefix .. 'trial_ids', 0, -1)
-- what remaining trials still use: found[text] once a remaining record holds it
local function unused(candidates, holders)
    local open, found = #candidates, {}
    if open == 0 then return {} end
    for first = 1, #remaining, 500 do
        for _, record in ipairs(holders(first, math.min(first + 499, #remaining))) do
            for _, candidate in ipairs(candidates) do
                if not found[candidate] and string.find(record, candidate, 1, true) then
                    found[candidate] = true
                    open = open - 1
                end
            end
            if open == 0 then return {} end
        end
    end
    local result = {}
    for _, candidate in ipairs(candidates) do
        if not found[candidate] then result[#result + 1] = candidate end
    end
    return result
end
local removed = unused(blobs, function(first, last)
    local documents = redis.call('HMGET', prefix .. 'trials', unpack(remaining, first, last))
    local present = {}
    for _, document in ipairs(documents) do
        if document then present[#present + 1] = document end
    end
    return present
end)
if #removed > 0 then redis.call('HDEL', prefix .. 'blobs', unpack(removed)) end
local orphans = unused(artifacts, function(first, last)
    local records = {}
    for i = first, last do
        for _, record in ipairs(redis.call('HVALS', prefix .. 'artifacts:' .. remaining[i])) do
            records[#records + 1] = record
        end
    end
    return records
end)
for key in pairs(touched) do
    local used = false
    for _, id in ipairs(remaining) do
        if redis.call('EXISTS', prefix .. 'metric:' .. id .. ':' .. key) == 1 then
            used = true
            break
        end
    end
    if not used then
        for _, set in ipairs({'metric_keys', 'metric_int_keys', 'metric_real_keys'}) do
            redis.call('SREM', prefix .. set, key)
        end
    end
end
return {deleted, removed, orphans}
"""
# -- history rows of trials recorded without them (issue 15) ----------------------------------
# ARGV: trials key, history key, n, then n trial ids whose rows are left (their trials are not
# recorded), then per trial to mend its id, the SHA-1 of the document its row was made from and
# the row. Removes the rows of trials still not recorded; replaces the rows of each trial to mend
# by the row given if the trial still holds that document (not deleted or rewritten meanwhile).
_MEND_HISTORY = """
local n = tonumber(ARGV[3])
for i = 4, 3 + n do
    if redis.call('HEXISTS', ARGV[1], ARGV[i]) == 0 then redis.call('ZREMRANGEBYSCORE', ARGV[2], ARGV[i], ARGV[i]) end
end
for i = 4 + n, #ARGV, 3 do
    local document = redis.call('HGET', ARGV[1], ARGV[i])
    if document and redis.sha1hex(document) == ARGV[i + 1] then
        redis.call('ZREMRANGEBYSCORE', ARGV[2], ARGV[i], ARGV[i])
        redis.call('ZADD', ARGV[2], ARGV[i], ARGV[i + 2])
    end
end
return 0
"""
_MENDED_PER_SCRIPT = 2000
"""Rows written by one run of the mending script (the server serves nothing else meanwhile)."""
# -- moving experiments (issue 12) ------------------------------------------------------------
# ARGV: prefix of the experiment, prefix of its staging, the key listing experiments, the
# experiment id, the staging's id. Replaces every key of the experiment by the staging's, renamed,
# and lists the experiment (not the staging): atomic. Returns how many keys were renamed.
_ADOPT = """
local old = redis.call('KEYS', ARGV[1] .. '*')
for first = 1, #old, 1000 do
    redis.call('DEL', unpack(old, first, math.min(first + 999, #old)))
end
local staged = redis.call('KEYS', ARGV[2] .. '*')
for _, key in ipairs(staged) do
    redis.call('RENAME', key, ARGV[1] .. string.sub(key, #ARGV[2] + 1))
end
redis.call('SREM', ARGV[3], ARGV[5])
redis.call('SADD', ARGV[3], ARGV[4])
return #staged
"""
# ARGV: key prefix, the key listing experiments, the experiment id. Deletes every key of the
# experiment and its listing at once; returns how many keys there were.
_DELETE_EXPERIMENT = """
local keys = redis.call('KEYS', ARGV[1] .. '*')
for first = 1, #keys, 1000 do
    redis.call('DEL', unpack(keys, first, math.min(first + 999, #keys)))
end
redis.call('SREM', ARGV[2], ARGV[3])
return #keys
"""


class RedisBackend(ServerBackend):
    """Store an experiment on a Redis server.

    Parameters
    ----------
    uri : str
        ``redis://[user:password@]host[:port][/db][?options]`` or ``rediss://``
        for TLS; ``timeout`` (seconds, default 10) bounds every wait for the
        server; other options (``ssl_cert_reqs``, ...) go to the client as
        they are.
    experiment_id : str
        Id of the experiment.
    connection_pool : redis.ConnectionPool, optional
        A pool to use in this process instead of opening one from ``uri``.

    Raises
    ------
    BackendError
        For a URI of another scheme or one that cannot be parsed.
    """

    kind = "Redis"
    _lost_records_name = "keys were"

    def __init__(
        self, uri: str, experiment_id: str, *, connection_pool: redis.ConnectionPool | None = None
    ) -> None:
        _check_uri(uri)
        super().__init__(uri, experiment_id)
        self._given_pool = connection_pool
        self._prefix = f"daskperiment:{self.experiment_id}:"
        self._write_script: Any = None

    @classmethod
    def from_pool(cls, pool: redis.ConnectionPool, experiment_id: str) -> "RedisBackend":
        """The store of ``experiment_id`` on the server of a ``redis.ConnectionPool``."""
        return cls(pool_uri(pool), experiment_id, connection_pool=pool)

    @property
    def client(self) -> redis.Redis:
        """The client of the server (connected on first use), as in daskperiment 0.5."""
        return self._client()

    @property
    def pool(self) -> redis.ConnectionPool:
        """The connection pool of :attr:`client`: the one given, else the backend's own."""
        return self._given_pool if self._given_pool is not None else self.client.connection_pool

    # -- connection -----------------------------------------------------------------
    def _open_connection(self) -> redis.Redis:
        if self._given_pool is not None:
            client = redis.Redis(connection_pool=self._given_pool)
        else:
            client = redis.Redis.from_url(
                self._client_uri,
                socket_connect_timeout=self.timeout,
                socket_timeout=self.timeout,
                # a connection the server closed is opened again once; a timeout is not retried
                retry=Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,)),
            )
        try:
            client.sadd(EXPERIMENTS_KEY, self.experiment_id)  # lists the experiment once opened
        except BaseException:
            client.close()
            raise
        return client

    def _close_connection(self, connection: redis.Redis) -> None:
        connection.close()
        if self._given_pool is None:
            connection.connection_pool.disconnect()

    def _connection_errors(self) -> tuple[type[BaseException], ...]:
        return (redis.ConnectionError, redis.TimeoutError)

    def _server_errors(self) -> tuple[type[BaseException], ...]:
        return (redis.RedisError,)

    def _authentication_failed(self, exc: BaseException) -> bool:
        return isinstance(exc, redis.AuthenticationError)  # WRONGPASS, NOAUTH, invalid password

    def _key(self, name: str) -> str:
        return self._prefix + name

    def _payload_key(self, cache_key: str) -> str:
        return self._key(f"cache_payload:{cache_key}")

    # -- writes -------------------------------------------------------------------------
    def _advance_trial_counter(self, count: int, epoch: str) -> int | None:
        return self._client().eval(
            _ALLOCATE, 0, self._key("epoch"), epoch, self._key("next_trial_id"), count
        )

    def _claim_epoch(self, floor: int) -> str:
        epoch = self._client().eval(
            _CLAIM, 0, self._key("epoch"), self._key("next_trial_id"), new_epoch(), floor
        )
        return epoch.decode("ascii")

    def _read_epoch(self) -> str | None:
        epoch = self._client().get(self._key("epoch"))
        return epoch.decode("ascii") if epoch is not None else None

    def _encode_starts(self, starts: list[TrialStart]) -> list[Any]:
        encoded: list[Any] = []
        for start in starts:
            document = start_document(start)
            heartbeat = document.pop("heartbeat")
            encoded += [repr(heartbeat), json.dumps(document, allow_nan=False, separators=(",", ":"))]
        return encoded

    def _record_starts(self, encoded: list[Any], count: int, epoch: str) -> int | None:
        return self._client().eval(
            _START, 0, self._key("epoch"), epoch, self._key("next_trial_id"), self._key("starts"),
            self._key("heartbeats"), count, *encoded,
        )

    def _beat(self, trial_ids: list[int], when: float) -> None:
        self._client().eval(
            _BEAT, 0, self._key("starts"), self._key("heartbeats"), repr(when), *trial_ids
        )

    def _encode(self, batch: RecordBatch, token: str) -> list[tuple[Any, ...]]:
        commands: list[tuple[Any, ...]] = []
        for blob in batch.blobs:
            commands.append(("HSETNX", self._key("blobs"), blob.digest, blob.content))
        for output in batch.step_outputs:
            commands.append(
                ("HSET", self._key("step_outputs"), output.input_key, output.output_hash)
            )
        for chunk in metric_chunks(batch.metrics, token):
            commands.append(
                (
                    "HSET",
                    self._key(f"metric:{chunk.trial_id}:{chunk.key}"),
                    chunk.chunk_id,
                    chunk.points,
                )
            )
        if batch.metrics:
            commands.append(
                ("SADD", self._key("metric_keys"), *sorted({p.key for p in batch.metrics}))
            )
            for name, keys in zip(("metric_int_keys", "metric_real_keys"), metric_kinds(batch.metrics)):
                if keys:
                    commands.append(("SADD", self._key(name), *keys))
        for value in batch.persisted:
            commands.append(
                ("HSET", self._key(f"persisted:{value.trial_id}"), value.step, value.payload)
            )
        for entry in batch.cache_entries:
            document = json.dumps(cache_entry_document(entry))
            commands.append(("HSET", self._key("cache"), entry.key, document))
            commands.append(("ZADD", self._key("cache_used"), float(entry.last_used), entry.key))
            if entry.payload is not None:
                commands.append(("SET", self._payload_key(entry.key), entry.payload))
            else:  # a payload the entry had before it was written again
                commands.append(("DEL", self._payload_key(entry.key)))
        for record in batch.artifacts:
            commands.append(
                (
                    "HSET",
                    self._key(f"artifacts:{int(record.trial_id)}"),
                    json.dumps([record.name, record.path]),
                    json.dumps(artifact_document(record)),
                )
            )
        for trial in batch.trials:
            fields = trial_document(trial)
            document = json.dumps(fields, allow_nan=False, separators=(",", ":"))
            commands.append(("HSET", self._key("trials"), trial.trial_id, document))
            row = json.dumps(history_row(fields), allow_nan=False, separators=(",", ":"))
            commands.append(("ZREMRANGEBYSCORE", self._key("history"), trial.trial_id, trial.trial_id))
            commands.append(("ZADD", self._key("history"), trial.trial_id, row))
            commands.append(("ZADD", self._key("trial_ids"), trial.trial_id, trial.trial_id))
        if batch.trials:
            ids = [trial.trial_id for trial in batch.trials]
            commands.append(("HDEL", self._key("starts"), *ids))
            commands.append(("HDEL", self._key("heartbeats"), *ids))
        return commands

    def _transmit(
        self, encoded: list[tuple[Any, ...]], epoch: str, token: str, trial_ids: list[int],
        input_keys: Sequence[str] = (), digests: Sequence[str] = (),
    ) -> Transmitted:
        """One script: checks, the batch, the outputs it replaces and the blobs held (one round trip)."""
        arguments: list[Any] = [
            self._key("epoch"), epoch, self._key("trial_tokens"), token, self._key("step_outputs"),
            self._key("blobs"), len(trial_ids), *trial_ids, len(input_keys), *input_keys,
            len(digests), *digests,
        ]
        for command in encoded:
            arguments.extend((len(command), *command))
        client = self._client()
        if self._write_script is None:  # sent by its digest (EVALSHA), loaded by the server once
            self._write_script = client.register_script(_WRITE)
        status, *answer = self._write_script(args=arguments, client=client)
        if status == 0:
            raise EpochChanged()
        if status == 1:
            raise TrialsTaken([int(t) for t in answer])
        hashes, held = answer[: len(input_keys)], answer[len(input_keys):]
        return Transmitted(
            previous={key: value.decode() for key, value in zip(input_keys, hashes) if value is not None},
            held={digest for digest, flag in zip(digests, held) if flag},
        )

    # -- reads ------------------------------------------------------------------------
    def last_trial_id(self) -> int:
        with self._reaching("read the last trial id"):
            last = self._client().zrevrange(self._key("trial_ids"), 0, 0)
        return int(last[0]) if last else 0

    def deletions(self) -> int:
        with self._reaching("read the count of deletions"):
            count = self._client().get(self._key("deletions"))
        return int(count) if count is not None else 0

    def load_trials(self, trial_ids: Sequence[int] | None = None) -> list[TrialRecord]:
        with self._reaching("read trials"), bulk_decoding():
            client = self._client()
            if trial_ids is None:  # the documents alone (HVALS: half the replies of HGETALL), sorted once decoded
                documents = client.hvals(self._key("trials"))
            else:
                ids = sorted({int(t) for t in trial_ids})
                documents = client.hmget(self._key("trials"), ids) if ids else []
            trees, plain = _stored_documents([d for d in documents if d is not None])
            flags = repeat(plain) if isinstance(plain, bool) else plain
            trials = [trial_from_document(tree, known) for tree, known in zip(trees, flags)]
            return sorted(trials, key=lambda trial: trial.trial_id)

    def load_trial_columns(self) -> TrialColumns:
        """Read the ``history`` rows (in id order), and the ids of the recorded trials, in one transaction.

        See :meth:`Backend.load_trial_columns`. Trials recorded without a row
        (by an older daskperiment, or with a row that cannot be read) are read
        from their documents, and their rows written for the next reads (each
        only if its trial still holds that document); rows of trials no longer
        recorded (deleted by an older daskperiment) are left out and removed.
        """
        with self._reaching("read trials"), bulk_decoding():
            pipe = self._client().pipeline(transaction=True)
            pipe.zrange(self._key("history"), 0, -1)
            pipe.hkeys(self._key("trials"))
            stored, recorded = pipe.execute()
            rows, plain = _history_rows(stored)
            recorded_ids = set(map(int, recorded))
            ids = list(map(itemgetter(0), rows))
            if len(rows) < len(stored) or not all(map(lt, ids, islice(ids, 1, None))) or set(ids) != recorded_ids:
                rows, plain = self._mended(rows, plain, recorded_ids, damaged=len(rows) < len(stored))
            return history_columns(rows, plain)

    def _mended(
        self, rows: list[list[Any]], plain: bool | list[bool], recorded_ids: set[int], damaged: bool
    ) -> tuple[list[list[Any]], list[bool]]:
        """The rows of the trials of ``recorded_ids`` and their flags, those the ``history`` lacks read from documents.

        ``rows`` are those read, ``damaged``: whether some members were not
        rows. Rows of trials not recorded are left out, and so are rows of an
        id that more than one row claims. The rows made replace the trials'
        rows, and rows left out are removed, by :data:`_MEND_HISTORY` (atomic
        per script). When members were damaged, doubled or left, members that
        are not the row of the trial of their score are removed too (no batch
        writes such a member). The rows returned are in any order.
        """
        flags = list(repeat(plain, len(rows))) if isinstance(plain, bool) else plain
        claims = Counter(map(itemgetter(0), rows))
        left = sorted(set(claims) - recorded_ids)
        client = self._client()
        if damaged or left or len(claims) < len(rows):
            misplaced = self._remove_misplaced_rows()
            claims.update(dict.fromkeys(misplaced, 2))  # read from their documents
        kept = [(row, flag) for row, flag in zip(rows, flags) if claims[row[0]] == 1 and row[0] in recorded_ids]
        missing = sorted(recorded_ids - {row[0] for row, _ in kept})
        documents = client.hmget(self._key("trials"), missing) if missing else []
        mends: list[Any] = []
        for trial_id, document in zip(missing, documents):
            if document is None:  # deleted meanwhile
                continue
            row = history_row(_trial_fields(document))
            textual = document[:1] == b"{"  # a pickled document (format 1) gets no row: `migrate` rewrites it
            kept.append((row, textual and serialization.is_plain_text(document)))
            if textual:
                mends += [trial_id, sha1(document).hexdigest(), json.dumps(row, separators=(",", ":"))]
        if mends or left:
            size = 3 * _MENDED_PER_SCRIPT
            parts = [mends[first : first + size] for first in range(0, len(mends), size)] or [[]]
            for number, part in enumerate(parts):  # the rows left out removed by the first
                removed = left if number == 0 else []
                client.eval(
                    _MEND_HISTORY, 0, self._key("trials"), self._key("history"), len(removed), *removed, *part
                )
        if mends:
            logger.info(
                "history rows written for %d trials of experiment %r recorded without them",
                len(mends) // 3, self.experiment_id,
            )
        return [row for row, _ in kept], [flag for _, flag in kept]

    def _remove_misplaced_rows(self) -> set[int]:
        """Remove the ``history`` members that are not the row of the trial of their score; the ids they claim."""
        client = self._client()
        misplaced, claimed = [], set()
        for member, score in client.zrange(self._key("history"), 0, -1, withscores=True):
            try:
                row = json.loads(member)
            except ValueError:
                row = None
            if not is_history_row(row) or row[0] != score:
                misplaced.append(member)
                if is_history_row(row):
                    claimed.add(row[0])
        if misplaced:
            client.zrem(self._key("history"), *misplaced)
            logger.warning(
                "%d history rows of experiment %r were not rows of their trials: removed (their trials are read "
                "from their records)", len(misplaced), self.experiment_id,
            )
        return claimed

    def load_starts(self, trial_ids: Sequence[int] | None = None) -> dict[int, TrialStart]:
        with self._reaching("read running trials"):
            pipe = self._client().pipeline(transaction=True)
            if trial_ids is None:
                pipe.hgetall(self._key("starts"))
                pipe.hgetall(self._key("heartbeats"))
                documents, heartbeats = pipe.execute()
            else:
                ids = sorted({int(t) for t in trial_ids})
                if not ids:
                    return {}
                pipe.hmget(self._key("starts"), ids)
                pipe.hmget(self._key("heartbeats"), ids)
                found, beats = pipe.execute()
                documents = {i: d for i, d in zip(ids, found) if d is not None}
                heartbeats = dict(zip(ids, beats))
        heartbeat_of = {int(i): float(beat) for i, beat in heartbeats.items() if beat is not None}
        starts = {
            int(i): start_from_document(json.loads(d), heartbeat_of.get(int(i)))
            for i, d in documents.items()
        }
        return dict(sorted(starts.items()))

    def load_metrics(self, key: str, trial_ids: Sequence[int]) -> MetricSeries:
        ids = sorted({int(t) for t in trial_ids})
        with self._reaching("read metrics"):
            pipe = self._client().pipeline(transaction=False)
            for trial_id in ids:
                pipe.hgetall(self._key(f"metric:{trial_id}:{key}"))
            pipe.sismember(self._key("metric_int_keys"), key)
            pipe.sismember(self._key("metric_real_keys"), key)
            *replies, integer, real = pipe.execute()
        chunks = (
            (chunk_id.decode(), trial_id, packed)
            for trial_id, reply in zip(ids, replies)
            for chunk_id, packed in reply.items()
        )
        return metric_series(chunks, key, bool(integer) and not real)

    def metric_keys(self) -> list[str]:
        with self._reaching("read metric keys"):
            keys = self._client().smembers(self._key("metric_keys"))
        return sorted(key.decode("utf-8") for key in keys)

    def load_persisted(self, step: str, trial_id: int) -> PersistedValue | None:
        with self._reaching("read a persisted value"):
            payload = self._client().hget(self._key(f"persisted:{int(trial_id)}"), step)
        return PersistedValue(trial_id, step, payload) if payload is not None else None

    def persisted_keys(self) -> list[tuple[int, str]]:
        with self._reaching("list the persisted values"):
            client = self._client()
            ids = [int(t) for t in client.zrange(self._key("trial_ids"), 0, -1)]
            pipe = client.pipeline(transaction=False)
            for trial_id in ids:
                pipe.hkeys(self._key(f"persisted:{trial_id}"))
            steps = pipe.execute() if ids else []
        return sorted((t, s.decode()) for t, names in zip(ids, steps) for s in names)

    def load_blob(self, digest: str) -> Blob | None:
        with self._reaching("read a blob"):
            content = self._client().hget(self._key("blobs"), digest)
        return Blob(digest, content) if content is not None else None

    def _read_step_outputs(self, input_keys: list[str]) -> dict[str, str]:
        hashes = self._client().hmget(self._key("step_outputs"), input_keys)
        return {key: value.decode() for key, value in zip(input_keys, hashes) if value is not None}

    # -- step cache ---------------------------------------------------------------------
    def load_cache_entries(self, keys: Sequence[str]) -> dict[str, CacheEntry]:
        """Read the entries by one transaction of ``HMGET`` and a ``ZSCORE`` per key.

        See :meth:`Backend.load_cache_entries`.
        """
        keys = list(keys)
        if not keys:
            return {}
        with self._reaching("read cache entries"):
            pipe = self._client().pipeline(transaction=True)
            pipe.hmget(self._key("cache"), keys)
            for key in keys:
                pipe.zscore(self._key("cache_used"), key)
            documents, *used = pipe.execute()
        return {
            key: cache_entry_from_document(json.loads(document), last_used)
            for key, document, last_used in zip(keys, documents, used)
            if document is not None
        }

    def load_cache_payload(self, key: str) -> bytes | None:
        with self._reaching("read a cache entry's payload"):
            return self._client().get(self._payload_key(key))

    def touch_cache_entries(self, keys: Sequence[str], when: float) -> None:
        if not keys:
            return
        with self._reaching("mark cache entries used"):
            self._client().zadd(
                self._key("cache_used"), {key: float(when) for key in keys}, xx=True
            )

    def cache_entries(self) -> list[CacheEntry]:
        with self._reaching("list cache entries"):
            pipe = self._client().pipeline(transaction=True)
            pipe.zrange(self._key("cache_used"), 0, -1, withscores=True)
            pipe.hgetall(self._key("cache"))
            used, documents = pipe.execute()
        return [
            cache_entry_from_document(json.loads(documents[key]), last_used)
            for key, last_used in used
        ]

    def delete_cache_entries(self, keys: Sequence[str]) -> None:
        keys = list(keys)
        if not keys:
            return
        with self._reaching("delete cache entries"):
            pipe = self._client().pipeline(transaction=True)
            pipe.hdel(self._key("cache"), *keys)
            pipe.zrem(self._key("cache_used"), *keys)
            pipe.delete(*(self._payload_key(key) for key in keys))
            pipe.execute()

    # -- artifacts ------------------------------------------------------------------------
    def load_artifacts(self, trial_id: int) -> list[ArtifactRecord]:
        with self._reaching("read artifact records"):
            records = self._client().hvals(self._key(f"artifacts:{int(trial_id)}"))
        artifacts = [artifact_from_document(json.loads(record)) for record in records]
        return sorted(artifacts, key=lambda record: (record.name, record.path))

    def artifact_digests(self) -> list[str]:
        """Read the ``artifacts:<n>`` hashes, found by ``SCAN``, in one pipeline (see :meth:`Backend.artifact_digests`)."""
        with self._reaching("read artifact records"):
            client = self._client()
            pipe = client.pipeline(transaction=False)
            for key in client.scan_iter(match=self._key("artifacts:*"), count=1000):
                pipe.hvals(key)
            stored = pipe.execute()
        return sorted({json.loads(record)["digest"] for records in stored for record in records})

    # -- notes and tags (issue 12) ------------------------------------------------------
    def load_annotations(self, trial_ids: Sequence[int] | None = None) -> dict[int, Annotation]:
        """Read the ``annotations`` hash (see :meth:`Backend.load_annotations`)."""
        with self._reaching("read notes and tags"):
            client = self._client()
            if trial_ids is None:
                stored = list(client.hgetall(self._key("annotations")).values())
            else:
                ids = sorted({int(t) for t in trial_ids})
                stored = client.hmget(self._key("annotations"), ids) if ids else []
        annotations = [annotation_from_document(json.loads(d)) for d in stored if d is not None]
        return {annotation.trial_id: annotation for annotation in annotations}

    def edit_annotations(self, edits: Sequence[AnnotationEdit]) -> None:
        """Apply the edits in one ``MULTI`` checked by ``WATCH`` (retried when another edit came first).

        See :meth:`Backend.edit_annotations`.
        """
        if not edits:
            return
        key = self._key("annotations")
        ids = sorted({int(edit.trial_id) for edit in edits})
        with self._reaching("save notes and tags"):
            with self._client().pipeline(transaction=True) as pipe:
                while True:
                    try:
                        pipe.watch(key)
                        stored = dict(zip(ids, pipe.hmget(key, ids)))
                        annotations = {
                            t: annotation_from_document(json.loads(d)) if d is not None else Annotation(t)
                            for t, d in stored.items()
                        }
                        for edit in edits:
                            trial_id = int(edit.trial_id)
                            annotations[trial_id] = edit.apply(annotations[trial_id])
                        pipe.multi()
                        kept = {t: json.dumps(annotation_document(a)) for t, a in annotations.items() if a}
                        if kept:
                            pipe.hset(key, mapping=kept)
                        emptied = [t for t, a in annotations.items() if not a]
                        if emptied:
                            pipe.hdel(key, *emptied)
                        pipe.execute()
                        return
                    except redis.WatchError:
                        continue

    # -- deleting trials and experiments (issue 12) --------------------------------------
    def delete_trials(self, trial_ids: Sequence[int]) -> Deletion:
        """Delete the trials by one Lua script: atomic (see :meth:`Backend.delete_trials`).

        The blobs and artifact files the trials used are read first; the
        script removes those that no remaining trial's record mentions.
        """
        ids = sorted({int(t) for t in trial_ids})
        if not ids:
            return Deletion()
        with self._reaching("delete trials"):
            client = self._client()
            pipe = client.pipeline(transaction=False)
            pipe.hmget(self._key("trials"), ids)
            for trial_id in ids:
                pipe.hvals(self._key(f"artifacts:{trial_id}"))
            documents, *artifacts = pipe.execute()
            blobs = sorted({
                digest for d in documents if d is not None for digest in document_blob_digests(_trial_fields(d))
            })
            digests = sorted({json.loads(r)["digest"] for records in artifacts for r in records})
            deleted, removed, orphans = client.eval(
                _DELETE, 0, self._prefix, len(ids), *ids, len(blobs), *blobs, len(digests), *digests
            )
        removed = [digest.decode() for digest in removed]
        self._blobs_removed(removed)
        return Deletion(tuple(sorted(int(t) for t in deleted)), tuple(sorted(d.decode() for d in orphans)))

    def delete_experiment(self) -> Deletion:
        """Delete every key of the experiment by one Lua script (see :meth:`Backend.delete_experiment`).

        Batches spooled for it in this working directory are dropped.
        """
        with self._reaching("delete the experiment"):
            client = self._client()
            ids = [int(t) for t in client.zrange(self._key("trial_ids"), 0, -1)]
            artifact_keys = list(client.scan_iter(match=self._key("artifacts:*"), count=1000))
            pipe = client.pipeline(transaction=False)
            for key in artifact_keys:
                pipe.hvals(key)
            pipe.hvals(self._key("cache"))
            *artifacts, cache = pipe.execute()
            client.eval(_DELETE_EXPERIMENT, 0, self._prefix, EXPERIMENTS_KEY, self.experiment_id)
        self._forget_spooled()
        self._start_afresh()
        locations = {json.loads(entry)["location"] for entry in cache} - {None}
        return Deletion(
            tuple(ids),
            tuple(sorted({json.loads(r)["digest"] for records in artifacts for r in records})),
            tuple(sorted(locations)),
        )

    def load_settings(self) -> dict[str, str]:
        """Read the ``settings`` hash (see :meth:`Backend.load_settings`)."""
        with self._reaching("read the settings"):
            stored = self._client().hgetall(self._key("settings"))
        return {name.decode("utf-8"): value.decode("utf-8") for name, value in sorted(stored.items())}

    def step_outputs(self) -> dict[str, str]:
        """Read the ``step_outputs`` hash (see :meth:`Backend.step_outputs`)."""
        with self._reaching("read the step output hashes"):
            stored = self._client().hgetall(self._key("step_outputs"))
        return {key.decode(): value.decode() for key, value in sorted(stored.items())}

    def import_starts(self, starts: Mapping[int, TrialStart]) -> None:
        """Store the starts and heartbeats of trials not recorded, in one transaction (see :meth:`Backend.import_starts`)."""
        encoded = {int(t): self._encode_starts([start]) for t, start in starts.items()}
        if not encoded:
            return
        with self._reaching("record the starts of imported trials"):
            client = self._client()
            recorded = client.hmget(self._key("trials"), sorted(encoded))
            pipe = client.pipeline(transaction=True)
            for (trial_id, (heartbeat, document)), held in zip(sorted(encoded.items()), recorded):
                if held is None:
                    pipe.hset(self._key("starts"), trial_id, document)
                    pipe.hset(self._key("heartbeats"), trial_id, heartbeat)
            pipe.execute()

    def staging(self, experiment_id: str) -> "RedisBackend":
        """Experiment ``experiment_id`` of this server (see :meth:`Backend.staging`)."""
        return RedisBackend(self._uri, experiment_id, connection_pool=self._given_pool)

    def adopt(self, staging: Backend) -> None:
        """Rename the staging's keys over this experiment's by one Lua script (see :meth:`Backend.adopt`).

        Processes that have this experiment open find another epoch (an
        ERROR says its records were replaced) and go on from the ids they reached.
        """
        if not isinstance(staging, RedisBackend) or staging._uri != self._uri:
            raise ValueError(f"{staging!r} is not a staging of {self!r}: make it with .staging(id)")
        with self._reaching("record the imported experiment"):
            self._client().eval(
                _ADOPT, 0, self._prefix, staging._prefix, EXPERIMENTS_KEY, self.experiment_id,
                staging.experiment_id,
            )
        staging.close()
        self._start_afresh()

    def discard_stagings(self, prefix: str) -> list[str]:
        """Delete the experiments of this server whose ids start with ``prefix`` (see :meth:`Backend.discard_stagings`)."""
        with self._reaching("list the experiments"):
            found = sorted(m.decode() for m in self._client().smembers(EXPERIMENTS_KEY) if m.decode().startswith(prefix))
        for experiment_id in found:
            self.staging(experiment_id).delete_experiment()
        return found

    # -- settings -------------------------------------------------------------------------
    def _write_setting(self, name: str, value: str) -> None:
        self._client().hset(self._key("settings"), name, value)

    def _read_setting(self, name: str) -> str | None:
        value = self._client().hget(self._key("settings"), name)
        return value.decode("utf-8") if value is not None else None


def _check_uri(uri: str) -> None:
    uri = timeout_option(uri)[0]
    parts = split(uri, REDIS_SCHEMES, EXAMPLE)
    shown = redact(uri)
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise BackendURIError(
            f"malformed URI {shown!r}: the port is not a number; e.g. {EXAMPLE!r}"
        ) from None
    database = parts.path.strip("/") or query_options(parts).get("db", "0")
    if not database.isdigit():
        raise BackendURIError(
            f"malformed URI {shown!r}: the database must be a number, e.g. {EXAMPLE!r}"
        )
    try:
        redis.ConnectionPool.from_url(uri)  # checks the options; connects to nothing
    except (ValueError, TypeError) as exc:
        raise malformed(uri, exc, EXAMPLE) from None


def pool_uri(pool: redis.ConnectionPool) -> str:
    """The URI of the server a connection pool connects to (password included).

    Raises
    ------
    BackendError
        For a pool of Unix-socket connections, which have no URI host.
    """
    options = pool.connection_kwargs
    if "host" not in options:
        raise BackendError(
            "a redis.ConnectionPool over a Unix socket cannot be shared with dask workers: "
            f"connect over TCP, e.g. {EXAMPLE!r}"
        )
    scheme = "rediss" if issubclass(pool.connection_class, redis.SSLConnection) else "redis"
    username, password = options.get("username"), options.get("password")
    credentials = ""
    if username or password:
        credentials = quote(username or "", safe="")
        credentials += f":{quote(password, safe='')}" if password else ""
        credentials += "@"
    host = options["host"]
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{credentials}{host}:{options.get('port', 6379)}/{options.get('db', 0)}"


def experiment_ids(uri: str) -> list[str]:
    """Ids of the experiments stored on the Redis server of ``uri``, sorted."""
    _check_uri(uri)
    client_uri, timeout = timeout_option(uri)
    client = redis.Redis.from_url(client_uri, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        members = client.smembers(EXPERIMENTS_KEY)
    except redis.AuthenticationError as exc:
        raise authentication_error("Redis", redact(uri), scrub(str(exc), uri).rstrip(".")) from exc
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise BackendError(f"cannot reach the Redis server {redact(uri)}: {scrub(str(exc), uri)}") from exc
    finally:
        client.close()
    return sorted(member.decode("utf-8") for member in members)


def _history_rows(stored: list[bytes]) -> tuple[list[list[Any]], bool | list[bool]]:
    """The :func:`~daskperiment.backend.codec.history_row` rows of ``history`` members, and whether each holds no tagged value.

    The entries are decoded as one JSON array (one parse for all); when that
    array is not one row per entry, one by one, leaving out entries that are
    not one row (their trials are then read from their documents). The flags
    are one bool for all rows when that says it.
    """
    text = b"[" + b",".join(stored) + b"]"
    try:
        rows = json.loads(text)
    except ValueError:
        rows = None
    if (
        rows is not None and len(rows) == len(stored) and set(map(type, rows)) <= {list}
        and set(map(len, rows)) <= {len(HISTORY_FIELDS)} and set(map(type, map(itemgetter(0), rows))) <= {int}
    ):
        if serialization.is_plain_text(text):  # no tagged value anywhere: one scan for all
            return rows, True
        return rows, [serialization.is_plain_text(entry) for entry in stored]
    rows, flags = [], []
    for entry in stored:
        try:
            row = json.loads(entry)
        except ValueError:
            continue
        if is_history_row(row):
            rows.append(row)
            flags.append(serialization.is_plain_text(entry))
    return rows, flags


def _stored_documents(documents: list[bytes]) -> tuple[list[dict[str, Any]], bool | list[bool]]:
    """The trial documents of stored ones, in their order, and whether each holds no tagged value.

    The JSON documents are decoded as one array (one parse instead of one per
    trial: a third faster for a history of 100,000); the documents are
    decoded one by one when that array is not one JSON value per document.
    The flags are one bool for all documents when that says it.
    """
    if all(document[:1] == b"{" for document in documents):
        text = b"[" + b",".join(documents) + b"]"
        try:
            trees = json.loads(text)
        except ValueError:
            trees = None
        if trees is not None and len(trees) == len(documents) and all(type(t) is dict for t in trees):
            if serialization.is_plain_text(text):  # no tagged value anywhere: one scan for all
                return trees, True
            return trees, [serialization.is_plain_text(document) for document in documents]
    return (
        [_trial_fields(document) for document in documents],
        [document[:1] == b"{" and serialization.is_plain_text(document) for document in documents],
    )


def _trial_fields(stored: bytes) -> dict[str, Any]:
    """The trial document stored: JSON text, or the pickle of a trial document of format 1.

    A format-1 document holds only plain values (its parameters and result are
    pickles of their own), so the unpickler of :func:`serialization.from_data`
    loads it without loading any class.
    """
    if stored[:1] == b"{":
        return json.loads(stored)
    return serialization.from_data(stored)
