"""The purity check's hashes and messages, made cheaply, lose nothing.

Plain inputs and outputs are hashed from their ``repr`` (others by dask's
``tokenize``) and a few numbers are rendered without ``reprlib``: the check
must still tell every differing input and output apart, on every scheduler
and store, and the messages must read as ``reprlib`` writes them.
"""

from __future__ import annotations

import pickle
import random
import threading
from typing import Any, Callable

import distributed
import numpy as np
import pytest

from daskperiment import Experiment
from daskperiment.context import _short, describe_arguments
from daskperiment.purity import CallArguments, call_arguments, hash_call

CHANGED = "Experiment step result is changed with the same input"


@pytest.mark.parametrize(
    ("one", "other"),
    [
        (((1,), {}), ((1.0,), {})),
        (((1,), {}), ((True,), {})),
        (((0.0,), {}), ((-0.0,), {})),
        ((("1",), {}), ((1,), {})),
        (((b"a",), {}), (("a",), {})),
        (((1, 2), {}), ((1,), {"x": 2})),
        (((), {"x": 1}), ((), {"y": 1})),
        (((None,), {}), (("None",), {})),
        ((((1, 2),), {}), (([1, 2],), {})),
        (((np.float64(1.0),), {}), ((1.0,), {})),
        (((np.arange(3),), {}), ((np.arange(3.0),), {})),
        ((("a\x1fb",), {}), (("a", "b"), {})),
    ],
)
def test_differing_inputs_never_share_a_key(one: tuple, other: tuple) -> None:
    first = hash_call("step", "code", *one, 1, "")
    second = hash_call("step", "code", *other, 1, "")
    assert first is not None and second is not None
    assert first.input_key != second.input_key
    assert first.output_hash == second.output_hash  # the same output


def test_equal_inputs_share_a_key_and_outputs_are_told_apart() -> None:
    calls = [
        hash_call("step", "code", (1, "a"), {"y": 2.5, "x": None}, out, "", seed)
        for out in (1, 1.0, True, "1", (1,), [1], np.int64(1), 1)
        for seed in (None, 7)
    ]
    assert len({c.input_key for c in calls}) == 2  # keyword order and the output do not matter; the seed does
    assert hash_call("step", "code", (1, "a"), {"x": None, "y": 2.5}, 0, "").input_key == calls[0].input_key
    outputs = [c.output_hash for c in calls[::2]]
    assert outputs[-1] == outputs[0] and len(set(outputs)) == 7
    assert hash_call("other", "code", (1, "a"), {"y": 2.5, "x": None}, 1, "").input_key != calls[0].input_key
    assert hash_call("step", "code2", (1, "a"), {"y": 2.5, "x": None}, 1, "").input_key != calls[0].input_key


def test_values_without_a_deterministic_hash_are_not_checked() -> None:
    assert hash_call("step", "code", (threading.Lock(),), {}, 1, "") is None
    assert hash_call("step", "code", (1,), {}, threading.Lock(), "") is None


def test_arguments_read_as_reprlib_renders_them() -> None:
    numbers = [0, 1, -1, 10**29, -(10**29) + 1, 2**62, 0.5, -0.0, float("nan"), float("inf"), 1e-300, True, None]
    others = ["text", "x" * 100, 10**45, [1, 2, 3], {"k": 1}, (1, 2)]
    names = ["a", "lr", "x" * 49, "x" * 60, "batch_size", "zeta"]
    rng = random.Random(15)
    for case in range(3000):
        pool = numbers if case % 3 else numbers + others
        args = tuple(rng.choice(pool) for _ in range(rng.randint(0, 8)))
        kwargs = {rng.choice(names): rng.choice(pool) for _ in range(rng.randint(0, 8))}
        text = f"args: {_short.repr(tuple(args))}, kwargs: {_short.repr(dict(kwargs))}"
        assert describe_arguments(args, kwargs) == (text if len(text) <= 200 else text[:197] + "..."), (args, kwargs)


def test_arguments_are_rendered_when_shown_as_they_were_when_the_step_ran() -> None:
    rng = random.Random(16)
    scalars = [0, -1, 2**70, 0.25, True, None, "text", "x" * 300, b"raw", 1j]
    for _ in range(500):
        args = tuple(rng.choice(scalars) for _ in range(rng.randint(0, 5)))
        kwargs = {f"k{i}": rng.choice(scalars) for i in range(rng.randint(0, 5))}
        shown = call_arguments(args, kwargs)
        assert isinstance(shown, CallArguments)  # nothing rendered yet
        assert str(shown) == describe_arguments(args, kwargs)
        assert pickle.loads(pickle.dumps(shown)) == describe_arguments(args, kwargs)  # sent as its text
    listed = [1, 2]
    shown = call_arguments((listed,), {"more": {"k": 1}})  # values that may change: rendered now
    listed.append(3)
    assert shown == "args: ([1, 2],), kwargs: {'more': {'k': 1}}"


@pytest.fixture(params=["sync", "threads", "processes", "distributed"])
def scheduler(request: pytest.FixtureRequest) -> Any:
    """Each scheduler users pick; ``distributed``: a LocalCluster of processes, its client active."""
    if request.param != "distributed":
        yield request.param
        return
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with distributed.Client(cluster):
            yield None


@pytest.fixture(params=["local", "redis", "mongo"])
def store(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "local":
        return {}
    return {"backend": request.getfixturevalue(f"{request.param}_uri")}


def test_impure_steps_are_flagged_and_pure_ones_never(
    make_experiment: Callable[..., Experiment], scheduler: Any, store: dict[str, Any], warnings_of, tmp_path
) -> None:
    ex = make_experiment(**store)
    a, b = ex.parameter("a"), ex.parameter("b")
    counter = str(tmp_path / "calls")  # shared by every process running the step

    @ex
    def pure(a, b):
        return (a, b * 0.5)

    @ex
    def drifting(a, b):  # for an even a, another output at every call
        import pathlib

        path = pathlib.Path(counter)
        calls = int(path.read_text()) + 1 if path.exists() else 1
        path.write_text(str(calls))
        return a if a % 2 else a * 1000 + calls

    @ex.result
    def total(p, q):
        return p[1] + q

    result = total(pure(a, b), drifting(a, b))
    plan = [(n % 6, float(n % 3)) for n in range(24)]  # each pair 4 times
    outputs = []
    for value_a, value_b in plan:
        outputs.append(ex.run(result, a=value_a, b=value_b, scheduler=scheduler, seed=1))
    flagged = [w for w in warnings_of() if CHANGED in w]
    expected = [f"step: drifting, args: ({value_a}, {value_b}), kwargs: {{}}"
                for n, (value_a, value_b) in enumerate(plan) if value_a % 2 == 0 and (value_a, value_b) in plan[:n]]
    assert len(flagged) == len(expected) == 9  # every call of an even a but its first
    assert all(text in warning for text, warning in zip(expected, flagged)), flagged
    assert not [w for w in flagged if "step: pure" in w]
    history = ex.get_history()
    assert history["Result"].tolist() == outputs
    for n, ((value_a, value_b), output) in enumerate(zip(plan, outputs), start=1):
        assert output == value_b * 0.5 + (value_a if value_a % 2 else value_a * 1000 + n)
