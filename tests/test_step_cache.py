"""The step cache (issue #11): cached steps computed once across trials, processes and machines.

Every test runs many trials and checks every recorded row against what its own
parameters must give (result, each metric point, persisted value), and counts
the calls each step really made (steps append a line to a file, so calls made
in dask worker processes count too). Steps are defined inside functions so
that they pickle by value to worker processes.
"""

from __future__ import annotations

import functools
import signal
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from daskperiment import Experiment, stepcache
from daskperiment.cli import main as cli_main
from daskperiment.errors import SweepError


def note(calls: Path, step: str, *values: Any) -> None:
    with open(calls, "a") as file:
        file.write(f"{step} {' '.join(repr(v) for v in values)}\n")


def calls_of(calls: Path) -> Counter:
    """Calls per step since the last look (the file is emptied)."""
    if not calls.exists():
        return Counter()
    lines = calls.read_text().splitlines()
    calls.unlink()
    return Counter(line.split()[0] for line in lines)


class Pipeline:
    """``load(a)`` -> ``features(rows, b)`` -> ``score(f, c)``, every step cached.

    Two versions of the code of ``load`` and ``features`` (see :meth:`expected`).
    """

    def __init__(self, ex: Experiment, folder: Path, load_version: int = 1, features_version: int = 1,
                 cache_result: bool = True) -> None:
        self.ex = ex
        self.load_version = load_version
        self.features_version = features_version
        self.calls = calls = folder / f"{ex.id}-calls"
        a, b, c = ex.parameter("a"), ex.parameter("b", default=1), ex.parameter("c", default=0)

        if load_version == 1:
            @ex.persist(cache=True)
            def load(a):
                note(calls, "load", a)
                ex.save_metric("loaded", 0, a)
                ex.save_metric("loaded", 1, 2 * a)
                return [a, a, a]
        else:
            @ex.persist(cache=True)
            def load(a):
                note(calls, "load", a)
                ex.save_metric("loaded", 0, a)
                ex.save_metric("loaded", 1, 2 * a)
                return [a + 1, a + 1, a + 1]

        if features_version == 1:
            @ex(cache=True)
            def features(rows, b):
                note(calls, "features", rows, b)
                ex.save_metric("features", 0, sum(rows) * b)
                return sum(rows) * b
        else:
            @ex(cache=True)
            def features(rows, b):
                note(calls, "features", rows, b)
                ex.save_metric("features", 0, sum(rows) * b + 1000)
                return sum(rows) * b + 1000

        @ex.result(cache=cache_result)
        def score(f, c):
            note(calls, "score", f, c)
            ex.save_metric("score", 0, f + c)
            return f + c

        self.features = features(load(a), b)
        self.result = score(self.features, c)

    def expected(self, a: Any, b: Any, c: Any) -> dict[str, Any]:
        rows = [a + (self.load_version - 1)] * 3
        features = sum(rows) * b + (1000 if self.features_version == 2 else 0)
        return {"rows": rows, "features": features, "score": features + c}

    def check(self, trial_ids: list[int], cached: dict[int, set[str]] | None = None) -> None:
        """Every trial's row, metrics and persisted value are those of its own parameters."""
        history = self.ex.get_history(verbose=True).loc[trial_ids]
        for trial_id, row in history.iterrows():
            a, b, c = row["a"], row["b"], row["c"]
            want = self.expected(a, b, c)
            assert row["Success"], (trial_id, row["Description"])
            assert row["Result"] == want["score"], (trial_id, row.to_dict())
            assert self.ex.get_persisted("load", trial_id) == want["rows"]
            assert self.ex.load_metric("loaded", trial_id)[trial_id].tolist() == [a, 2 * a]
            assert self.ex.load_metric("features", trial_id)[trial_id].tolist() == [want["features"]]
            assert self.ex.load_metric("score", trial_id)[trial_id].tolist() == [want["score"]]
            if cached is not None:
                text = row.get("Cached", "") if "Cached" in history else ""
                steps = {part.split(" (")[0] for part in str(text or "").split(", ") if part}
                assert steps == cached.get(trial_id, set()), (trial_id, text)


@pytest.fixture(params=["local", "redis", "mongo"])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Keyword arguments of ``make_experiment`` for each kind of store."""
    if request.param == "local":
        return {}
    return {"backend": request.getfixturevalue(f"{request.param}_uri")}


# -- hits and misses ---------------------------------------------------------------------------
def test_identical_trials_compute_each_step_once_on_every_store(store, make_experiment, tmp_path) -> None:
    ex = make_experiment(**store)
    pipeline = Pipeline(ex, tmp_path)
    combos = [(a, b, c) for a in (1, 2) for b in (1, 3) for c in (0, 5)]  # 8 distinct trials
    first = [ex.run(pipeline.result, a=a, b=b, c=c, seed=1) for a, b, c in combos]
    assert first == [pipeline.expected(*combo)["score"] for combo in combos]
    assert calls_of(pipeline.calls) == Counter(load=2, features=4, score=8)
    first_ids = list(range(1, 9))
    seen_a = [combo[0] for combo in combos]
    seen_ab = [combo[:2] for combo in combos]
    pipeline.check(first_ids, cached={
        i + 1: ({"load"} if seen_a.index(a) < i else set())
        | ({"features"} if seen_ab.index((a, b)) < i else set())
        for i, (a, b, c) in enumerate(combos)
    })

    # 40 more trials repeating those, 8 threads at once: nothing is computed again
    repeats = combos * 5
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(ex.run, pipeline.result, a=a, b=b, c=c, seed=i) for i, (a, b, c) in enumerate(repeats)]
        results = [future.result() for future in futures]
    assert results == [pipeline.expected(*combo)["score"] for combo in repeats]
    assert calls_of(pipeline.calls) == Counter()
    later = list(range(9, 49))
    # a fully cached trial loads its result and the records of every step
    pipeline.check(later, cached={trial_id: {"load", "features", "score"} for trial_id in later})
    # each later trial names the trial that computed each output it loaded
    history = ex.get_history()
    for trial_id in later:
        a, b, c = history.loc[trial_id, ["a", "b", "c"]]
        source = first_ids[combos.index((a, b, c))]
        by_a = first_ids[[combo[0] for combo in combos].index(a)]
        by_ab = first_ids[[combo[:2] for combo in combos].index((a, b))]
        assert history.loc[trial_id, "Cached"] == (
            f"load (trial {by_a}), features (trial {by_ab}), score (trial {source})"
        )


def test_an_uncached_result_loads_the_steps_it_uses_and_copies_their_records(make_experiment, tmp_path) -> None:
    ex = make_experiment()
    pipeline = Pipeline(ex, tmp_path, cache_result=False)
    for c in range(12):
        assert ex.run(pipeline.result, a=2, b=3, c=c) == 18 + c
    # load and features once, score every time; load's output is not even read (only its records)
    assert calls_of(pipeline.calls) == Counter(load=1, features=1, score=12)
    ids = list(range(1, 13))
    pipeline.check(ids, cached={trial_id: {"load", "features"} for trial_id in ids[1:]})


def test_a_change_recomputes_exactly_the_steps_it_affects(make_experiment, tmp_path) -> None:
    ex = make_experiment()
    Pipeline(ex, tmp_path).result.compute  # noqa: B018  (define the parameters)
    runs: list[int] = []

    def run(pipeline: Pipeline, **values: Any) -> Counter:
        ex.run(pipeline.result, **values, seed=3)
        runs.append(ex.trial_id)
        return calls_of(pipeline.calls)

    base = Pipeline(ex, tmp_path)
    assert run(base, a=1, b=2, c=3) == Counter(load=1, features=1, score=1)
    assert run(base, a=1, b=2, c=3) == Counter()
    assert run(base, a=1, b=2, c=4) == Counter(score=1)                 # c: score only
    assert run(base, a=1, b=5, c=3) == Counter(features=1, score=1)     # b: features and score
    assert run(base, a=7, b=2, c=3) == Counter(load=1, features=1, score=1)  # a: everything
    changed = Pipeline(ex, tmp_path, features_version=2)                # code of features
    assert run(changed, a=1, b=2, c=3) == Counter(features=1, score=1)
    assert run(changed, a=1, b=2, c=3) == Counter()
    upstream = Pipeline(ex, tmp_path, load_version=2, features_version=2)  # code upstream of all
    assert run(upstream, a=1, b=2, c=3) == Counter(load=1, features=1, score=1)
    back = Pipeline(ex, tmp_path)                                       # the first code again
    assert run(back, a=1, b=2, c=3) == Counter()
    history = ex.get_history()
    versions = [base] * 5 + [changed] * 2 + [upstream] + [back]
    for trial_id, pipeline in zip(runs, versions):
        a, b, c = history.loc[trial_id, ["a", "b", "c"]]
        assert history.loc[trial_id, "Result"] == pipeline.expected(a, b, c)["score"]


def test_recomputation_can_be_forced(make_experiment, tmp_path) -> None:
    ex = make_experiment()
    pipeline = Pipeline(ex, tmp_path)
    ex.run(pipeline.result, a=1)
    created = ex.get_cache().set_index("Step")["Created"]
    assert calls_of(pipeline.calls) == Counter(load=1, features=1, score=1)
    ex.run(pipeline.result, a=1, cache=False)
    assert calls_of(pipeline.calls) == Counter(load=1, features=1, score=1)
    ex.set_parameters(a=1)
    pipeline.result.compute(cache=False)
    assert calls_of(pipeline.calls) == Counter(load=1, features=1, score=1)
    assert (ex.get_cache().set_index("Step")["Created"] > created).all()  # entries replaced
    ex.submit(pipeline.result, a=1, cache=False).result()
    ex.sweep(pipeline.result, grid={"a": [1]}, cache=False)
    assert calls_of(pipeline.calls) == Counter(load=2, features=2, score=2)
    pipeline.result.compute()
    assert calls_of(pipeline.calls) == Counter()
    every = {"load", "features", "score"}
    pipeline.check(list(range(1, 7)), cached={1: set(), 2: set(), 3: set(), 4: set(), 5: set(), 6: every})


# -- seeds --------------------------------------------------------------------------------------
def test_random_draws_follow_the_inputs_or_with_seeded_the_seed(make_experiment, tmp_path) -> None:
    ex = make_experiment()
    calls = tmp_path / "random-calls"
    n = ex.parameter("n")

    @ex(cache=True)
    def by_inputs(n):
        note(calls, "by_inputs", n)
        return np.random.random(n).tolist()

    @ex(cache=True, seeded=True)
    def by_seed(n):
        note(calls, "by_seed", n)
        return np.random.random(n).tolist()

    @ex.result
    def pair(x, y):
        return x, y

    # sync: with threads, two steps running at once share the global generators' state
    result = pair(by_inputs(n), by_seed(n))
    run = functools.partial(ex.run, result, scheduler="sync")
    outputs = {seed: [run(n=3, seed=seed) for _ in range(3)] for seed in (1, 2, 3)}
    # by_inputs: once for all seeds (its draws follow from its inputs); by_seed: once per seed
    assert calls_of(calls) == Counter(by_inputs=1, by_seed=3)
    draws = {seed: {tuple(y) for _, y in runs} for seed, runs in outputs.items()}
    assert all(len(d) == 1 for d in draws.values()) and len(set.union(*draws.values())) == 3
    assert len({tuple(x) for runs in outputs.values() for x, _ in runs}) == 1
    # forced recomputation draws the same numbers again: the cache never changes an output
    assert run(n=3, seed=2, cache=False) == outputs[2][0]
    ex.clear_cache()
    assert run(n=3, seed=3) == outputs[3][0]
    assert run(n=4, seed=3)[0][:3] != outputs[3][0][0]  # other inputs, other draws


# -- sweeps, schedulers and the cluster ---------------------------------------------------------
def test_sweeps_reuse_shared_steps_and_earlier_sweeps_on_every_scheduler(scheduler, make_experiment, tmp_path) -> None:
    ex = make_experiment()
    pipeline = Pipeline(ex, tmp_path, cache_result=False)
    grid = {"a": [1, 2, 3, 4], "b": [1, 2, 3], "c": [0, 10]}  # 24 trials
    first = ex.sweep(pipeline.result, grid=grid, seed=5, scheduler=scheduler)
    assert calls_of(pipeline.calls) == Counter(load=4, features=12, score=24)
    pipeline.check(list(first.index), cached={})
    # a larger sweep: 24 old trials' steps loaded, new values of b computed
    second = ex.sweep(pipeline.result, grid={**grid, "b": [1, 2, 3, 4]}, seed=6, scheduler=scheduler)
    assert calls_of(pipeline.calls) == Counter(features=4, score=32)
    pipeline.check(
        list(second.index),
        cached={t: {"load", "features"} if b != 4 else {"load"} for t, b in zip(second.index, second["b"])},
    )
    # single trials of another process shape (run, submit) reuse the sweeps' outputs too
    futures = [ex.submit(pipeline.result, a=a, b=4, c=1, scheduler=scheduler) for a in (1, 2, 3, 4)]
    assert [f.result() for f in futures] == [pipeline.expected(a, 4, 1)["score"] for a in (1, 2, 3, 4)]
    assert calls_of(pipeline.calls) == Counter(score=4)


def test_a_hundred_trial_sweep_runs_nothing_the_second_time(store, make_experiment, tmp_path) -> None:
    ex = make_experiment(**store)  # the re-run's trials finish together: recorded in groups
    pipeline = Pipeline(ex, tmp_path)
    grid = {"a": list(range(10)), "b": list(range(10))}
    first = ex.sweep(pipeline.result, grid=grid)
    assert calls_of(pipeline.calls) == Counter(load=10, features=100, score=100)
    again = ex.sweep(pipeline.result, grid=grid)
    assert calls_of(pipeline.calls) == Counter()
    assert list(again["Result"]) == list(first["Result"])
    pipeline.check(list(again.index), cached={t: {"load", "features", "score"} for t in again.index})


# -- resuming -----------------------------------------------------------------------------------
def test_a_failed_trial_run_again_resumes_after_its_finished_steps(make_experiment, tmp_path) -> None:
    ex = make_experiment()
    pipeline = Pipeline(ex, tmp_path, cache_result=False)
    flag = tmp_path / "ready"
    x = ex.parameter("x", default=0)

    @ex.result
    def final(f, x):
        note(pipeline.calls, "final", f)
        if not flag.exists():
            raise RuntimeError("input not ready")
        return f + x

    result = final(pipeline.features, x)
    for a in range(10):
        with pytest.raises(RuntimeError, match="input not ready"):
            ex.run(result, a=a, b=2)
    assert calls_of(pipeline.calls) == Counter(load=10, features=10, final=10)
    flag.touch()
    assert [ex.run(result, a=a, b=2, x=1) for a in range(10)] == [6 * a + 1 for a in range(10)]
    assert calls_of(pipeline.calls) == Counter(final=10)


KILLED_STEPS = """
import time
from pathlib import Path
from daskperiment import Experiment, stepcache


def sweep(folder):
    ex = Experiment("resumed", backend=folder / "store")
    a = ex.parameter("a")

    @ex(cache=True)
    def slow_prepare(a):
        with open(folder / "calls", "a") as file:
            file.write(f"prepare {a}\\n")
        return a * 10

    @ex.result
    def finish(p):
        with open(folder / "calls", "a") as file:
            file.write(f"finish {p}\\n")
        if (folder / "hang").exists():
            (folder / "hanging").touch()
            time.sleep(600)
        return p + 1

    return ex.sweep(finish(slow_prepare(a)), grid={"a": list(range(20))}, scheduler="sync")
"""
KILLED_SCRIPT = """
import sys
from pathlib import Path
import resumed_steps

print(resumed_steps.sweep(Path(sys.argv[1]))["Result"].tolist())
"""


def test_a_killed_sweep_run_again_resumes_after_its_finished_steps(tmp_path, child_env) -> None:
    (tmp_path / "resumed_steps.py").write_text(KILLED_STEPS)
    script = tmp_path / "resumed.py"
    script.write_text(KILLED_SCRIPT)
    (tmp_path / "hang").touch()
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=child_env, cwd=tmp_path)
    deadline = time.monotonic() + 120
    while not (tmp_path / "hanging").exists():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = Counter(line.split()[0] for line in (tmp_path / "calls").read_text().splitlines())
    assert before["finish"] == 1 and before["prepare"] >= 1
    (tmp_path / "calls").unlink()
    (tmp_path / "hang").unlink()
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], env=child_env, cwd=tmp_path,
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(str([10 * a + 1 for a in range(20)]))
    after = Counter(line.split()[0] for line in (tmp_path / "calls").read_text().splitlines())
    assert after == Counter(prepare=20 - before["prepare"], finish=20)


# -- the cache's size, listing and clearing -----------------------------------------------------
def test_last_use_is_recorded_again_only_when_older_than_the_resolution(make_experiment, monkeypatch) -> None:
    ex = make_experiment()
    a = ex.parameter("a")

    @ex(cache=True)
    def double(a):
        return 2 * a

    @ex.result
    def plus_one(x):
        return x + 1

    result = plus_one(double(a))
    ex.run(result, a=1)
    first = ex.get_cache()["Last Used"].iloc[0]
    for _ in range(5):
        assert ex.run(result, a=1) == 3  # hits within the minute: no write of their use
    assert ex.get_cache()["Last Used"].iloc[0] == first
    monkeypatch.setattr(stepcache, "USE_RESOLUTION", 0.0)
    time.sleep(0.01)
    ex.run(result, a=1)
    assert ex.get_cache()["Last Used"].iloc[0] > first


def test_least_recently_used_outputs_are_evicted_above_the_limit(make_experiment, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(stepcache, "USE_RESOLUTION", 0.0)  # every use recorded: the order is exact
    ex = make_experiment()
    calls = tmp_path / "calls"
    a = ex.parameter("a")

    @ex(cache=True)
    def block(a):
        note(calls, "block", a)
        return bytes([a]) * 100_000

    @ex.result
    def size(data):
        return len(data)

    result = size(block(a))
    for value in range(6):
        ex.run(result, a=value)
    assert calls_of(calls) == Counter(block=6)
    cache = ex.get_cache()
    assert len(cache) == 6 and (cache["Size"] > 100_000).all()
    ex.run(result, a=0)  # a=0 is used again: now the most recently used
    assert calls_of(calls) == Counter()
    ex.set_cache_limit(int(3.5 * cache["Size"].max()))
    kept = ex.get_cache()
    assert len(kept) == 3
    assert sorted(ex.get_history().loc[kept["Trial ID"], "a"]) == [0, 4, 5]
    assert ex.get_cache_limit() == int(3.5 * cache["Size"].max())
    for value in (0, 4, 5):
        ex.run(result, a=value)
    assert calls_of(calls) == Counter()
    ex.run(result, a=1)  # a miss: stored, and the limit evicts the least recently used
    assert calls_of(calls) == Counter(block=1)
    held = len(ex.get_cache())
    assert held > 0 and ex.clear_cache("block") == held
    assert ex.get_cache().empty
    assert [ex.run(result, a=value) for value in (0, 1)] == [100_000, 100_000]
    assert calls_of(calls) == Counter(block=2)
    with pytest.raises(ValueError, match="invalid cache size"):
        ex.set_cache_limit("lots")
    with pytest.raises(ValueError, match="cannot be negative"):
        ex.set_cache_limit(-1)


def test_cache_command_shows_limits_and_clears(make_experiment, tmp_path, capsys) -> None:
    ex = make_experiment("cached")
    pipeline = Pipeline(ex, tmp_path)
    for a in range(3):
        ex.run(pipeline.result, a=a)
    store = str(tmp_path / "store")
    assert cli_main(["cache", "cached", "--backend", store]) == 0
    shown = capsys.readouterr().out
    assert shown.count("load") == 3 and shown.count("features") == 3 and shown.count("score") == 3
    assert "9 outputs" in shown
    assert cli_main(["cache", "cached", "--backend", store, "--clear", "nosuchstep"]) == 1
    assert "no cached output of step nosuchstep" in capsys.readouterr().err
    assert cli_main(["cache", "cached", "--backend", store, "--limit", "many"]) == 2
    assert cli_main(["cache", "cached", "--backend", store, "--clear", "score", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert "removed 3 cached outputs" in out and "score" not in out.split("\n", 1)[1]
    assert cli_main(["cache", "cached", "--backend", store, "--clear"]) == 0
    assert "removed 6 cached outputs" in capsys.readouterr().out
    assert ex.get_cache().empty


# -- large outputs, bad input -------------------------------------------------------------------
@pytest.fixture(params=["file", "s3"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """Where large outputs go: the store's default folder (None), or a bucket of the S3 server."""
    if request.param == "file":
        return None
    from daskperiment import ArtifactStore

    server = request.getfixturevalue("s3_server")
    return ArtifactStore(server.url(f"cache-{time.time_ns()}"), server.storage_options, tmp_path / "downloads")


def test_large_outputs_are_kept_in_the_artifact_store(store, location, make_experiment, tmp_path) -> None:
    ex = make_experiment(**store, artifacts=location)
    calls = tmp_path / "calls"
    a = ex.parameter("a")

    @ex.persist(cache=True)
    def big(a):
        note(calls, "big", a)
        return np.full(300_000, a, dtype=np.float64)  # 2.4 MB

    @ex.result
    def total(x):
        return float(x.sum())

    result = total(big(a))
    assert [ex.run(result, a=v) for v in (1, 2, 1, 2, 3)] == [3e5, 6e5, 3e5, 6e5, 9e5]
    assert calls_of(calls) == Counter(big=3)
    cache = ex.get_cache()
    assert set(cache["Stored In"]) == {"artifacts"} and len(cache) == 3
    assert np.array_equal(ex.get_persisted("big", 3), np.full(300_000, 1.0))
    ex.set_cache_limit(0)  # evicting removes the large payloads from the artifact store too
    assert ex.get_cache().empty
    assert not ex.artifacts.fs.exists(f"{ex.artifacts.url}/cache/objects") or not ex.artifacts.fs.find(
        f"{ex.artifacts.url}/cache/objects"
    )
    assert ex.run(result, a=1) == 3e5
    assert calls_of(calls) == Counter(big=1)


def test_bad_cache_options_and_unhashable_inputs(make_experiment, tmp_path, warnings_of) -> None:
    ex = make_experiment()
    with pytest.raises(TypeError, match="cache must be True or False"):
        ex(cache="yes")
    with pytest.raises(ValueError, match="needs cache=True"):
        ex.persist(seeded=True)
    calls = tmp_path / "calls"
    thing = ex.parameter("thing")

    @ex(cache=True)
    def use(thing):
        note(calls, "use", type(thing).__name__)
        return thing if isinstance(thing, int) else 1

    @ex(cache=True)
    def unpicklable(x):
        note(calls, "unpicklable", x)
        return (i for i in range(x))

    @ex.result
    def done(x, g):
        return x + sum(g)

    result = done(use(thing), unpicklable(use(thing)))
    with pytest.raises(TypeError, match="cache must be True or False"):
        ex.run(result, thing=1, cache="no")
    with pytest.raises(SweepError, match="cache must be True or False"):
        ex.sweep(result, grid={"thing": [1]}, cache=None)
    for _ in range(3):
        assert ex.run(result, thing=object()) == 1  # no deterministic hash: computed every time
        assert ex.run(result, thing=2) == 3
    assert calls_of(calls) == Counter(use=8, unpicklable=6)  # use(2) cached (two calls); generators never
    warnings = warnings_of()
    assert any("no deterministic hash" in w for w in warnings)
    assert any("output of step unpicklable was not cached" in w for w in warnings)
    assert ex.get_history()["Success"].all() and len(ex.get_history()) == 6


# -- command line -------------------------------------------------------------------------------
CACHED_SCRIPT = """
from pathlib import Path
from daskperiment import Experiment, stepcache

ex = Experiment("scripted", backend=Path("store"))
a = ex.parameter("a")


@ex(cache=True)
def prepare(a):
    with open("calls", "a") as file:
        file.write(f"prepare {a}\\n")
    return a * 10


@ex.result
def finish(p):
    return p + 1


finish(prepare(a))
"""


def test_script_mode_and_sweeps_load_cached_steps_unless_no_cache(tmp_path, child_env) -> None:
    (tmp_path / "cached.py").write_text(CACHED_SCRIPT)

    def run(*args: str) -> Counter:
        done = subprocess.run(
            [sys.executable, *args], cwd=tmp_path, env=child_env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        return calls_of(tmp_path / "calls")

    assert run("cached.py", "a=1") == Counter(prepare=1)
    assert run("cached.py", "a=1") == Counter()
    assert run("cached.py", "a=1", "--no-cache") == Counter(prepare=1)
    sweep = [sys.executable, "-m", "daskperiment.cli", "sweep"]
    assert run(*sweep[1:], "cached.py", "a=1,2,3") == Counter(prepare=2)
    assert run(*sweep[1:], "cached.py", "a=1,2,3", "--no-cache") == Counter(prepare=3)
    ex = Experiment("scripted", backend=tmp_path / "store")
    history = ex.get_history()
    assert list(history["Result"]) == [11, 11, 11, 11, 21, 31, 11, 21, 31]
    assert list(history["Cached"]) == ["", "prepare (trial 1)", "", "prepare (trial 3)", "", "", "", "", ""]
    shown = subprocess.run(
        [sys.executable, "-m", "daskperiment.cli", "show", "scripted", "4", "--backend", str(tmp_path / "store")],
        cwd=tmp_path, env=child_env, capture_output=True, text=True, timeout=120,
    )
    assert "Cached Steps:     prepare (trial 3)\n" in shown.stdout  # labels as wide as "Process Time (s):"


def test_reopening_an_experiment_takes_the_artifact_location_given_now(make_experiment, tmp_path) -> None:
    ex = make_experiment("located", artifacts=tmp_path / "elsewhere")
    assert Experiment("located", ex.backend, artifacts=tmp_path / "another") is ex  # re-initialised, as 0.5
    assert ex.artifacts.url == str(tmp_path / "another")
    assert Experiment("located", ex.backend) is ex  # none given: the store's own folder
    assert ex.artifacts.url.startswith(ex.backend.artifact_root())


def test_a_damaged_or_vanished_entry_fails_clearly_once_then_the_step_is_computed(store, make_experiment, tmp_path) -> None:
    from dataclasses import replace

    from daskperiment.errors import CacheError
    from daskperiment.records import RecordBatch

    ex = make_experiment(**store)
    pipeline = Pipeline(ex, tmp_path, cache_result=False)
    for c in range(5):
        ex.run(pipeline.result, a=2, b=3, c=c)
    assert calls_of(pipeline.calls) == Counter(load=1, features=1, score=5)
    (entry,) = [e for e in ex.backend.cache_entries() if e.step == "features"]
    damaged = replace(entry, payload=b"\x80\x05garbage")  # written by someone else, or cut short
    ex.backend.write_batch(RecordBatch(cache_entries=[damaged]))
    with pytest.raises(CacheError, match="cannot be read back .* the entry was removed: run the trial again"):
        ex.run(pipeline.result, a=2, b=3, c=9)
    row = ex.get_history().iloc[-1]
    assert not row["Success"] and row["Description"].startswith("CacheError(the cached output of step 'features'")
    assert ex.run(pipeline.result, a=2, b=3, c=9) == 27  # computed again, and cached again
    assert calls_of(pipeline.calls) == Counter(features=1, score=1)
    assert ex.run(pipeline.result, a=2, b=3, c=10) == 28
    assert calls_of(pipeline.calls) == Counter(score=1)
    pipeline.check([1, 2, 3, 4, 5, 7, 8])


def test_a_worker_on_another_machine_sends_its_entry_to_the_client_when_the_store_is_local(make_experiment) -> None:
    from daskperiment.context import TrialContext, process_identity
    from daskperiment.execution import CacheSlot, StepSpec, run_step
    from daskperiment.outcome import TrialOutcome
    from daskperiment.stepcache import StepCache
    from daskperiment.writer import TrialWriter

    ex = make_experiment()
    cache = StepCache(ex.backend, ex.artifacts)
    spec = StepSpec("double", lambda x: 2 * x, False, "digest", cache=True)
    here = TrialContext(ex.id, (1,), 1, process_identity(), "env", "session")
    elsewhere = TrialContext(ex.id, (2,), 1, "another-machine.example:1234", "env", "session")
    kept_here = run_step(spec, here, (3,), {}, CacheSlot(cache, "a" * 32))
    assert kept_here.records.cache_entry is None and set(ex.backend.load_cache_entries(["a" * 32])) == {"a" * 32}
    sent = run_step(spec, elsewhere, (4,), {}, CacheSlot(cache, "b" * 32))
    assert sent.output == 8 and sent.records.cache_entry.trial_id == 2
    assert ex.backend.load_cache_entries(["b" * 32]) == {}  # nothing written from "another machine"
    writer = TrialWriter(ex.backend, ex.artifacts)
    writer.write(TrialOutcome(2, result=8, steps=[sent.records]), parameters={}, seed=1, process_time=0.1,
                 code=("c" * 64, "code\n"))
    assert cache.output(cache.payload(ex.backend.load_cache_entries(["b" * 32])["b" * 32]),
                        sent.records.cache_entry) == 8


def test_sweeps_sent_in_chunks_load_what_each_later_trial_needs(make_experiment, tmp_path) -> None:
    ex = make_experiment()
    pipeline = Pipeline(ex, tmp_path, cache_result=False)
    ex.run(pipeline.result, a=1, b=1, c=0)
    assert calls_of(pipeline.calls) == Counter(load=1, features=1, score=1)
    # trial 1 of the sweep loads features (so load's records only); trial 2 computes
    # features from load's output: the chunk of trial 1 must not hand on a record-only load
    frame = ex.sweep(pipeline.result, trials=[{"a": 1, "b": 1}, {"a": 1, "b": 2}, {"a": 1, "b": 3}],
                     max_in_flight=1, scheduler="sync")
    assert frame["Success"].all(), frame["Description"].tolist()
    assert calls_of(pipeline.calls) == Counter(features=2, score=3)
    pipeline.check([1, *frame.index])
