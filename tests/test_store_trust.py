"""A store holds data, not code: forged pickles never run, other keys and bad records never break reads."""

from __future__ import annotations

import base64
import json
import logging
import os
import pickle
import sqlite3
import stat
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import pytest

from daskperiment import Experiment, serialization
from daskperiment.backend import LocalBackend, open_backend
from daskperiment.board.store import TrialCache
from daskperiment.cli import main
from daskperiment.errors import UnreadableCacheError, UnreadableValueError
from daskperiment.records import Blob, PersistedValue, RecordBatch
from daskperiment.serialization import Trust, UnreadableValue

STORES = ["local", "redis", "mongo"]


class Attack:
    """A pickle that, when loaded, creates ``marker`` (the attack that worked before values were signed)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(params=STORES)
def spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The backend of an experiment in each kind of store (a folder for the local one)."""
    if request.param == "local":
        return str(tmp_path / "daskperiment_cache")
    return request.getfixturevalue(f"{request.param}_uri")


def backend_of(spec: str) -> Any:
    return Path(spec) if "://" not in spec else spec


def open_experiment(spec: str, experiment_id: str = "attacked") -> Experiment:
    folder = backend_of(spec)
    backend = folder / experiment_id if isinstance(folder, Path) else folder
    return Experiment(experiment_id, backend=backend, script_mode=False)


def define(ex: Experiment) -> Any:
    """Steps of a small experiment: a persisted step, a cached step, a result."""
    a = ex.parameter("a")

    @ex.persist
    def prepare(a):
        return a * 2

    @ex(cache=True)
    def features(x):
        return [x, x + 1]

    @ex.result
    def score(values):
        return float(sum(values))

    return score(features(prepare(a)))


def forge_trial(ex: Experiment, trial_id: int, **fields: Any) -> None:
    """Replace stored fields of trial ``trial_id`` by hand, as someone with write access to the store can."""
    backend = ex.backend
    if isinstance(backend, LocalBackend):
        with sqlite3.connect(backend.database_path) as connection:
            for name, value in fields.items():
                connection.execute(f"UPDATE trials SET {name} = ? WHERE trial_id = ?", (value, trial_id))
        return
    if type(backend).__name__ == "RedisBackend":
        import redis

        client = redis.Redis.from_url(backend.uri)
        key = f"daskperiment:{ex.id}:trials"
        document = json.loads(client.hget(key, trial_id))
        document.update(fields)
        client.hset(key, trial_id, json.dumps(document) if all(
            not isinstance(v, bytes) for v in fields.values()) else pickle.dumps(document))
        # its history row goes too: the next history is read from the forged document (and its row written from it)
        client.zremrangebyscore(f"daskperiment:{ex.id}:history", trial_id, trial_id)
        client.close()
        return
    import pymongo

    client = pymongo.MongoClient(backend.uri)
    client.get_default_database()[f"daskperiment_{ex.id}"].update_one({"_id": f"trial:{trial_id}"}, {"$set": fields})
    client.close()


def forged_node(payload: bytes, type_name: str = "builtins.float", signature: bytes = b"\0" * 32) -> dict[str, str]:
    """A pickle node of a data tree whose signature is not the writer's."""
    return {"@pickle": base64.b64encode(payload).decode(), "type": type_name, "hmac": signature.hex()}


def test_forged_pickles_run_nothing_anywhere(spec: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "attack-ran"
    attack = pickle.dumps(Attack(marker), protocol=5)
    ex = open_experiment(spec)
    graph = define(ex)
    for a in range(1, 4):
        ex.set_parameters(a=a)
        graph.compute()
    # trial 1: raw pickles as an earlier version stored them; trial 2: forged signatures
    forge_trial(ex, 1, result=attack, parameters=attack)
    text = json.dumps(forged_node(attack))
    forge_trial(ex, 2, **({"result": text, "parameters": json.dumps({"a": forged_node(attack)})}
                          if isinstance(ex.backend, LocalBackend) else
                          {"result": forged_node(attack), "parameters": {"a": forged_node(attack)}}))
    ex.backend.write_batch(
        RecordBatch(
            persisted=[PersistedValue(1, "prepare", attack), PersistedValue(2, "prepare", serialization.MAGIC + b"P" + b"\0" * 34 + attack)],
            cache_entries=[replace(entry, payload=attack) for entry in ex.backend.cache_entries()],
        )
    )
    ex.backend.close()
    Experiment._instances.clear()

    reader = open_experiment(spec)
    history = reader.get_history()
    assert list(history.index) == [1, 2, 3]
    assert isinstance(history.loc[1, "Result"], UnreadableValue)
    assert "earlier daskperiment" in str(history.loc[1, "Result"]) and "daskperiment migrate" in str(history.loc[1, "Result"])
    assert str(history.loc[2, "Result"]).startswith("<unreadable builtins.float: signed with another key")
    assert isinstance(history.loc[2, "a"], UnreadableValue) and history.loc[3, "a"] == 3
    for trial_id in (1, 2):
        with pytest.raises(UnreadableValueError, match=f"step 'prepare' persisted in trial {trial_id}"):
            reader.get_persisted("prepare", trial_id)
    assert reader.get_persisted("prepare", 3) == 6
    # recording reads the last trial and the cache: the trial is recorded, the cache refused clearly
    graph = define(reader)
    reader.set_parameters(a=1)
    with pytest.raises(UnreadableCacheError, match="cannot be used here.*--no-cache"):
        graph.compute()
    reader.set_parameters(a=10)
    assert graph.compute() == 41.0
    assert list(reader.get_history().index) == [1, 2, 3, 4, 5]
    assert reader.get_history().loc[5, "Result"] == 41.0
    # the command line and the dashboard
    cli_backend = spec if "://" in spec else str(Path(spec))
    for command in (["history", "attacked"], ["list"], ["show", "attacked", "1"], ["show", "attacked", "2"],
                    ["history", "attacked", "--format", "json"], ["diff", "attacked", "1", "2"]):
        assert main([*command, "--backend", cli_backend]) == 0, command
    shown = capsys.readouterr().out
    assert "<unreadable" in shown
    cache = TrialCache(open_backend(backend_of(spec) / "attacked" if "://" not in spec else spec, "attacked"), 0)
    assert cache.refresh() and list(cache.frame.index) == [1, 2, 3, 4, 5]
    assert not marker.exists()


def test_a_teammate_with_another_key_sees_placeholders_and_a_clear_error(spec: str, tmp_path: Path, child_env: dict[str, str]) -> None:
    ex = open_experiment(spec, "shared")
    a = ex.parameter("a")

    @ex.persist
    def table(a):
        return pd.DataFrame({"a": [a, a + 1]})

    @ex.result
    def summary(frame):
        return frame.describe()

    for value in range(1, 21):
        ex.set_parameters(a=value)
        summary(table(a)).compute()
    ex.backend.close()
    where = spec if "://" in spec else str(Path(spec) / "shared")
    teammate = textwrap.dedent(
        f"""
        from pathlib import Path
        import daskperiment
        where = {where!r}
        ex = daskperiment.Experiment("shared", backend=where if "://" in where else Path(where), script_mode=False)
        history = ex.get_history()
        print(len(history), sorted(set(map(str, history["Result"])))[0])
        try:
            ex.get_persisted("table", 3)
        except daskperiment.errors.UnreadableValueError as exc:
            print("ERROR", exc)
        """
    )
    own = subprocess.run([sys.executable, "-c", teammate], env=child_env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert own.returncode == 0, own.stderr
    assert own.stdout.startswith("20 ") and "ERROR" not in own.stdout  # the same user: read with the default key
    other = subprocess.run(
        [sys.executable, "-c", teammate], env={**child_env, "DASKPERIMENT_SIGNING_KEY": "another-teams-key-1234"},
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert other.returncode == 0, other.stderr
    count, placeholder = other.stdout.splitlines()[0].split(" ", 1)
    assert count == "20" and placeholder.startswith("<unreadable pandas.DataFrame: signed with another key")
    assert "ERROR output of step 'table' persisted in trial 3" in other.stdout
    assert "Set DASKPERIMENT_SIGNING_KEY" in other.stdout


def test_the_cli_and_the_dashboard_never_load_pickles(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ex = Experiment("pickled", backend=tmp_path / "store" / "pickled", script_mode=False)

    @ex.result
    def frame():
        return pd.DataFrame({"a": [1]})

    frame().compute()
    assert main(["history", "pickled", "--backend", str(tmp_path / "store"), "--wide"]) == 0
    assert "<pickled pandas.DataFrame>" in capsys.readouterr().out
    cache = TrialCache(ex.backend, 0)
    cache.refresh()
    assert str(cache.frame.loc[1, "Result"]) == "<pickled pandas.DataFrame>"
    assert ex.get_history().loc[1, "Result"].equals(pd.DataFrame({"a": [1]}))  # the library does


BAD_SCRIPT = """
import dataclasses, os
from pathlib import Path
import daskperiment

@dataclasses.dataclass
class Point:
    x: int
    y: int

spec = os.environ["STORE"]
ex = daskperiment.Experiment("mixed", backend=Path(spec) if "://" not in spec else spec)

@ex.result
def point():
    return Point(1, 2)

point()
"""

GOOD_SCRIPT = """
import sys
from pathlib import Path
import daskperiment

spec = sys.argv[1]
ex = daskperiment.Experiment("mixed", backend=Path(spec) if "://" not in spec else spec, script_mode=False)
a = ex.parameter("a")

@ex.result
def double(a):
    return 2 * a

for value in range(int(sys.argv[2]), int(sys.argv[3])):
    ex.set_parameters(a=value)
    double(a).compute()
history = ex.get_history()
print(len(history), history["Result"].map(str).tolist())
"""


def test_a_result_of_a_class_of_a_script_breaks_no_read_and_no_later_trial(
    spec: str, tmp_path: Path, child_env: dict[str, str], capsys: pytest.CaptureFixture
) -> None:
    folder = spec if "://" in spec else str(Path(spec) / "mixed")
    (tmp_path / "bad.py").write_text(BAD_SCRIPT)
    (tmp_path / "good.py").write_text(GOOD_SCRIPT)

    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, *args], env={**child_env, "STORE": folder}, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done

    run("good.py", folder, "1", "11")
    run("bad.py")  # script mode: one trial, whose result is a __main__.Point
    done = run("good.py", folder, "11", "31")
    count, results = done.stdout.split(" ", 1)
    assert count == "31"
    results = eval(results)
    assert results[:10] == [str(2 * a) for a in range(1, 11)] and results[11:] == [str(2 * a) for a in range(11, 31)]
    assert results[10].startswith("<unreadable __main__.Point: it cannot be loaded here (AttributeError")
    assert "could not" not in done.stderr
    assert main(["history", "mixed", "--backend", spec, "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["Result"] for row in rows] == [2 * a for a in range(1, 11)] + ["<pickled __main__.Point>"] + [
        2 * a for a in range(11, 31)
    ]
    assert main(["list", "--backend", spec]) == 0 and "mixed" in capsys.readouterr().out
    cache = TrialCache(open_backend(Path(folder) if "://" not in folder else folder, "mixed"), 0)
    assert cache.refresh() and list(cache.frame.index) == list(range(1, 32))


def test_a_read_for_a_warning_that_fails_never_keeps_a_trial_from_being_recorded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ex = Experiment("warned", backend=tmp_path / "warned", script_mode=False)

    @ex.result
    def one():
        return 1

    one().compute()
    last = ex.backend.load_trials()[0]
    with sqlite3.connect(ex.backend.database_path) as connection:  # damaged code and environment blobs
        connection.execute("UPDATE blobs SET content = ? WHERE digest IN (?, ?)",
                           (b"\xff\xfe not text, not JSON", last.code_digest, last.environment_digest))
    ex.backend.close()
    Experiment._instances.clear()
    again = Experiment("warned", backend=tmp_path / "warned", script_mode=False)

    @again.result
    def two():
        return 2

    with caplog.at_level(logging.WARNING, logger="daskperiment"):
        for _ in range(12):
            assert two().compute() == 2
    assert list(again.get_history()["Result"]) == [1] + [2] * 12
    assert any(r.levelno == logging.WARNING and "could not compare" in r.getMessage() for r in caplog.records)


def test_migrate_re_encodes_an_older_stores_pickles(spec: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ex = open_experiment(spec, "old")
    graph = define(ex)
    for value in range(1, 13):
        ex.set_parameters(a=value)
        graph.compute()
    for trial_id in range(1, 13):  # as an earlier daskperiment stored them: raw pickles
        forge_trial(ex, trial_id, result=pickle.dumps(pd.Series([trial_id]), protocol=5),
                    parameters=pickle.dumps({"a": trial_id}, protocol=5))
    ex.backend.write_batch(RecordBatch(persisted=[PersistedValue(t, "prepare", pickle.dumps(pd.Series([t]))) for t in range(1, 13)]))
    ex.backend.close()
    Experiment._instances.clear()
    cli_backend = spec
    old = open_experiment(spec, "old")
    history = old.get_history()
    assert list(history["a"]) == list(range(1, 13))  # plain data of old pickles reads without migrating
    assert all(str(r).startswith("<unreadable pandas.Series: an unsigned pickle") for r in history["Result"])
    assert main(["migrate", "old", "--backend", cli_backend]) == 2
    assert "--trust-old-pickles" in capsys.readouterr().err
    assert main(["migrate", "old", "--backend", cli_backend, "--trust-old-pickles"]) == 0
    assert "re-encoded 12 trials, 12 persisted values" in capsys.readouterr().out
    migrated = old.get_history()
    assert [r.tolist() for r in migrated["Result"]] == [[t] for t in range(1, 13)]
    assert all(old.get_persisted("prepare", t).tolist() == [t] for t in range(1, 13))


def test_queries_of_the_stores_see_parameters_as_data(tmp_path: Path, mongo_uri: str) -> None:
    local = Experiment("q_local", backend=tmp_path / "q", script_mode=False)
    shared = Experiment("q_mongo", backend=mongo_uri, script_mode=False)
    for ex in (local, shared):
        lr = ex.parameter("lr")

        @ex.result
        def score(lr):
            return lr * 10

        for value in (0.1, 0.2, 0.3):
            ex.set_parameters(lr=value)
            score(lr).compute()
    with sqlite3.connect(local.backend.database_path) as connection:
        rows = connection.execute("SELECT trial_id, json_extract(result, '$') FROM trials "
                                  "WHERE json_extract(parameters, '$.lr') > 0.15").fetchall()
    assert rows == [(2, 2.0), (3, 3.0)]
    import pymongo

    client = pymongo.MongoClient(mongo_uri)
    found = client.get_default_database()["daskperiment_q_mongo"].find({"parameters.lr": {"$gt": 0.15}})
    assert sorted((d["trial_id"], d["result"]) for d in found) == [(2, 2.0), (3, 3.0)]
    client.close()


def test_the_signing_key_file_is_private_and_spool_files_too(tmp_path: Path) -> None:
    from daskperiment.backend.spool import Spool
    from daskperiment.signing import default_key_path

    serialization.dumps(pd.DataFrame())
    assert stat.S_IMODE(default_key_path().stat().st_mode) == 0o600
    spool = Spool(tmp_path / "spool")
    path = spool.put("1-token", RecordBatch(blobs=[Blob.of(b"x")]))
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(spool.directory.stat().st_mode) == 0o700
    assert [s.batch for s in spool.pending()] == [RecordBatch(blobs=[Blob.of(b"x")])]
    path.write_bytes(path.read_bytes()[:-3] + b"xyz")  # altered: never loaded
    assert spool.pending() == []


@pytest.mark.parametrize("key", ["short", ""])
def test_a_too_short_key_is_a_clear_error_and_loses_no_trial(
    key: str, monkeypatch: pytest.MonkeyPatch, make_experiment: Callable[..., Experiment]
) -> None:
    monkeypatch.setenv("DASKPERIMENT_SIGNING_KEY", key)
    with pytest.raises(TypeError, match="at least 16"):
        serialization.dumps(pd.DataFrame())
    assert serialization.loads(serialization.dumps({"a": (1, 2.5)})) == {"a": (1, 2.5)}  # data needs no key
    ex = make_experiment()

    @ex.result
    def frame():
        return pd.DataFrame({"a": [1]})

    for _ in range(3):
        frame().compute()
    assert [r.startswith("   a") for r in ex.get_history()["Result"]] == [True] * 3  # recorded as its repr


def test_a_key_file_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stored = serialization.dumps(pd.DataFrame({"a": [1]}))
    (tmp_path / "team.key").write_text("a-key-the-team-shares-1234\n")
    monkeypatch.setenv("DASKPERIMENT_SIGNING_KEY_FILE", str(tmp_path / "team.key"))
    assert "signed with another key" in str(serialization.loads(stored))
    shared = serialization.dumps(pd.DataFrame({"a": [1]}))
    monkeypatch.delenv("DASKPERIMENT_SIGNING_KEY_FILE")
    monkeypatch.setenv("DASKPERIMENT_SIGNING_KEY", "a-key-the-team-shares-1234")
    assert serialization.loads(shared).equals(pd.DataFrame({"a": [1]}))
    with serialization.trusting(Trust.NONE):
        assert str(serialization.loads(shared)) == "<pickled pandas.DataFrame>"
