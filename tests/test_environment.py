"""Environment of trials: recorded once per distinct content, readable, diffed on change."""

from __future__ import annotations

import importlib.metadata
import json
import platform

from daskperiment import Experiment
from daskperiment.envblob import environment_blob


def one_trial(ex: Experiment) -> None:
    @ex.result
    def step():
        return 1

    step().compute()


def test_environment_of_a_trial(ex: Experiment) -> None:
    one_trial(ex)
    text = ex.get_environment(trial_id=1)
    assert isinstance(text, str) and text == ex.get_environment()
    assert any(platform.python_version() in line for line in text.splitlines())
    packages = ex.get_python_packages(trial_id=1)
    assert isinstance(packages, str)
    assert f"pandas=={importlib.metadata.version('pandas')}" in packages.splitlines()
    assert packages.splitlines() == sorted(packages.splitlines(), key=str.lower)
    assert packages == ex.get_environment(trial_id=1, category="requirements")
    assert ex.get_environment(1, category="numpy").startswith("numpy version: ")


def test_environment_info_is_the_captured_data(ex: Experiment) -> None:
    one_trial(ex)
    info = ex.get_environment_info(trial_id=1)
    assert info["python"]["version"] == platform.python_version()
    assert info == ex.get_environment_info()
    info["python"]["version"] = "changed"  # a copy: the captured data is untouched
    assert ex.get_environment_info()["python"]["version"] == platform.python_version()


def test_identical_environment_and_code_are_stored_once(ex: Experiment) -> None:
    for _ in range(3):
        one_trial(ex)
    trials = ex.backend.load_trials()
    assert len({t.environment_digest for t in trials}) == 1
    assert len({t.code_digest for t in trials}) == 1
    with ex.backend._lock:
        (count,) = ex.backend._connect().execute("SELECT COUNT(*) FROM blobs").fetchone()
    assert count == 2  # one code text, one environment


def test_environment_change_is_warned(make_experiment, tmp_path, warnings_of) -> None:
    ex = make_experiment()
    one_trial(ex)
    # Simulate an earlier trial recorded with another pandas version.
    record = ex.backend.load_trials([1])[0]
    old_environment = json.loads(ex.backend.load_blob(record.environment_digest).content)
    for package in old_environment["packages"]["packages"]:
        if package["name"] == "pandas":
            package["version"] = "0.0.1"
    blob = environment_blob(old_environment)
    from dataclasses import replace

    from daskperiment.records import RecordBatch

    ex.backend.write_batch(RecordBatch(trials=[replace(record, environment_digest=blob.digest)], blobs=[blob]))

    # A new process (here: a fresh experiment object) compares with that trial.
    ex.backend.close()
    type(ex)._instances.clear()
    again = make_experiment(ex.id)
    one_trial(again)
    warnings = warnings_of()
    # 0.5's warning, then one WARNING per package line
    start = warnings.index("Installed Python packages have been changed (since trial 1)")
    location = next(p["location"] for p in old_environment["packages"]["packages"] if p["name"] == "pandas")
    assert warnings[start + 1:start + 3] == [
        f"-pandas 0.0.1 ({location})",
        f"+pandas {importlib.metadata.version('pandas')} ({location})",
    ]
    # nothing else changed: no other environment warning
    assert not [w for w in warnings if "Environment has been changed" in w]


def test_other_environment_changes_are_warned_with_their_diff(make_experiment, warnings_of) -> None:
    ex = make_experiment()
    one_trial(ex)
    record = ex.backend.load_trials([1])[0]
    old_environment = json.loads(ex.backend.load_blob(record.environment_digest).content)
    old_environment["python"]["version"] = "3.0.1"
    blob = environment_blob(old_environment)
    from dataclasses import replace

    from daskperiment.records import RecordBatch

    ex.backend.write_batch(RecordBatch(trials=[replace(record, environment_digest=blob.digest)], blobs=[blob]))
    ex.backend.close()
    type(ex)._instances.clear()
    again = make_experiment(ex.id)
    one_trial(again)
    warnings = warnings_of()
    assert not [w for w in warnings if "Installed Python packages" in w]
    (change,) = [w for w in warnings if w.startswith("Environment has been changed since trial 1:")]
    removed = [line for line in change.splitlines() if line.startswith("-Python Version:")]
    added = [line for line in change.splitlines() if line.startswith("+Python Version:")]
    assert [line.split()[-1] for line in removed + added] == ["3.0.1", platform.python_version()]
    assert "[packages]" not in change
