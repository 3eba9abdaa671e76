"""0.5's documented quickstart and tips, walked in order as one user session.

Each step is a row of the quickstart table in the project's shared notes on 0.5
(``daskperiment-0.5-behaviour.md``): the call, then the output 0.5's docs show.
The last part opens the experiment in new processes, before and after a
package upgrade (a distribution on ``PYTHONPATH`` whose version changes).
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import daskperiment
from daskperiment.errors import LockedTrialError, TrialIDNotFoundError


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """Messages logged by daskperiment at ``level`` since the last clear."""
    return [r.getMessage() for r in caplog.records if r.levelno == level and r.name.startswith("daskperiment")]


def test_quickstart_and_tips_of_05_in_order(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="daskperiment")
    ex = daskperiment.Experiment(id="quickstart_pj")
    assert repr(ex) == (
        "Experiment(id: quickstart_pj, trial_id: 0, backend: LocalBackend('daskperiment_cache/quickstart_pj'))"
    )
    a = ex.parameter("a")
    assert repr(a) == "Parameter(a: Undefined)"
    b = ex.parameter("b")

    @ex
    def prepare_data(a, b):
        return a + b

    @ex.result
    def calculate_score(s):
        return 10 / s

    s = calculate_score(prepare_data(a, b))
    assert re.fullmatch(r"Delayed\('calculate_score-[0-9a-f-]+'\)", repr(s))

    caplog.clear()
    ex.set_parameters(a=1, b=2)
    assert s.compute() == 3.3333333333333335
    info = messages(caplog, logging.INFO)
    assert info.index("Started Experiment (trial id=1)") < info.index("Finished Experiment (trial id=1)")
    ex.set_parameters(b=3)
    assert s.compute() == 2.5
    assert ex.get_parameters(trial_id=1) == {"a": 1, "b": 2}
    assert ex.get_parameters(trial_id=2) == {"a": 1, "b": 3}
    history = ex.get_history()
    assert list(history.columns) == ["a", "b", "Result", "Success", "Finished", "Process Time", "Description", "Status"]
    assert history["Result"].tolist() == [3.3333333333333335, 2.5]
    assert history["Description"].isna().all()

    ex.set_parameters(a=1, b=-1)
    with pytest.raises(ZeroDivisionError, match="division by zero"):
        s.compute()
    row = ex.get_history(verbose=True).loc[3]
    assert np.isnan(row["Result"]) and row["Result Type"] == "None" and not row["Success"]
    assert row["Description"] == "ZeroDivisionError(division by zero)"
    assert "Experiment failed: ZeroDivisionError(division by zero)" in messages(caplog, logging.ERROR)

    # the step is decorated again with @ex.persist: warned at once, with its diff, a line per WARNING
    caplog.clear()

    @ex.persist
    def prepare_data(a, b):
        return a + b

    warnings = messages(caplog, logging.WARNING)
    start = warnings.index("Code context has been changed: prepare_data")
    assert warnings[start + 1:start + 6] == [
        "@@ -1,3 +1,3 @@", "-@ex", "+@ex.persist", " def prepare_data(a, b):", "     return a + b"
    ]
    s = calculate_score(prepare_data(a, b))
    ex.set_parameters(a=1, b=2)
    assert s.compute() == 3.3333333333333335
    ex.set_parameters(a=3, b=2)
    assert s.compute() == 2.0
    assert ex.get_persisted("prepare_data", trial_id=4) == 3
    assert ex.get_persisted("prepare_data", trial_id=5) == 5

    @ex.result
    def calculate_score(s):
        for i in range(100):
            ex.save_metric("dummy_score", epoch=i, value=100 - np.random.random() * i)
        return 10 / s

    s = calculate_score(prepare_data(a, b))
    ex.set_parameters(a=1, b=2)
    assert s.compute() == 3.3333333333333335
    ex.set_parameters(a=3, b=4)
    assert s.compute() == 1.4285714285714286
    one = ex.load_metric("dummy_score", trial_id=6)
    assert one.index.name == "Epoch" and one.columns.name == "Trial ID"
    assert list(one.columns) == [6] and list(one.index) == list(range(100))
    both = ex.load_metric("dummy_score", trial_id=[6, 7])
    assert list(both.columns) == [6, 7] and both.shape == (100, 2)

    code = ex.get_code()
    assert "def prepare_data(a, b):" in code and "def calculate_score(s):" in code
    assert "\n\n\n" in code  # steps separated by two blank lines
    assert "@ex.persist" not in ex.get_code(trial_id=1) and "@ex.persist" in code
    code_file = ex.code_file(trial_id=1)  # 0.5 wrote it at each trial; made on request now
    assert code_file == (Path("daskperiment_cache") / "quickstart_pj" / "code" / "quickstart_pj_1.py").absolute()
    assert code_file.read_text() == ex.get_code(trial_id=1)

    # randomness: a generated seed is logged; a given one too; a repeated seed does not warn again
    @ex.result
    def calculate_score(s):
        return 10 / s + np.random.random()

    s = calculate_score(prepare_data(a, b))
    caplog.clear()
    s.compute()
    assert any(re.fullmatch(r"Random seed is not provided, initialized with generated seed: \d+", m)
               for m in messages(caplog, logging.INFO))
    caplog.clear()
    first = s.compute(seed=1)
    assert "Random seed is initialized with given seed: 1" in messages(caplog, logging.INFO)
    caplog.clear()
    assert s.compute(seed=1) == first
    assert not [m for m in messages(caplog, logging.WARNING) if "result is changed" in m]

    # tips: a parameter no step uses is recorded; trial ids inside and outside a trial
    ex.parameter("user_name")
    ex.set_parameters(user_name="my_name")
    seen: dict[str, object] = {}

    @ex.result
    def calculate_score(s):
        seen["current"] = ex.current_trial_id
        try:
            ex.trial_id
        except LockedTrialError as error:
            seen["locked"] = error
        return 10 / s

    s = calculate_score(prepare_data(a, b))
    before = ex.trial_id
    s.compute(seed=2)
    assert seen["current"] == before + 1 and isinstance(seen["locked"], LockedTrialError)
    assert ex.trial_id == before + 1
    assert ex.get_history().loc[before + 1, "user_name"] == "my_name"
    with pytest.raises(TrialIDNotFoundError, match="Current Trial ID only exists during a trial execution"):
        ex.current_trial_id


SCRIPT = """
import daskperiment
ex = daskperiment.Experiment(id="quickstart_pj", script_mode=False)
a = ex.parameter("a")

@ex.result
def double(a):
    return 2 * a

ex.set_parameters(a=1)
print(len(ex.get_history()), double(a).compute(seed=1))
"""


def fake_distribution(folder: Path, version: str) -> Path:
    """A folder holding the metadata of ``fakepkg`` at ``version`` (an installed package, for Python)."""
    info = folder / f"fakepkg-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakepkg\nVersion: {version}\n")
    return folder


def run_session(tmp_path: Path, child_env: dict[str, str], packages: Path) -> subprocess.CompletedProcess:
    script = tmp_path / "session.py"
    script.write_text(textwrap.dedent(SCRIPT))
    env = {**child_env, "PYTHONPATH": f"{packages}:{child_env.get('PYTHONPATH', '')}"}
    return subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )


def test_a_new_process_after_a_package_upgrade_warns_as_05(tmp_path: Path, child_env: dict[str, str]) -> None:
    first = run_session(tmp_path, child_env, fake_distribution(tmp_path / "old", "1.0"))
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["0", "2"]
    assert "Installed Python packages have been changed" not in first.stderr
    second = run_session(tmp_path, child_env, fake_distribution(tmp_path / "new", "2.0"))
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == ["1", "2"]  # the history is restored
    lines = second.stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if "Installed Python packages have been changed (since trial 1)" in line)
    assert lines[start + 1].endswith(f"-fakepkg 1.0 ({tmp_path / 'old'})")
    assert lines[start + 2].endswith(f"+fakepkg 2.0 ({tmp_path / 'new'})")
    assert not [line for line in lines if "Environment has been changed" in line]
