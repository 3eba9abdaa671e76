"""Where the environment collectors keep their cache and how they read package reports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python -c code`` with this checkout importable and exactly ``env`` added to a clean environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DASKPERIMENT_", "XDG_"))}
    base.update(PYTHONPATH=str(ROOT), HOME=str(cwd / "home"), **env)
    return subprocess.run(
        [sys.executable, "-c", code], env=base, cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


# -- the user cache folder ---------------------------------------------------------------

CACHE_CPU_INFO = (
    "from daskperiment.collector.cpu import cpu_info\n"
    "from daskperiment.collector.diskcache import cache_dir\n"
    "print(cache_dir()); cpu_info()\n"
)


def test_user_cache_follows_xdg_cache_home(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg-cache"
    done = run_python(CACHE_CPU_INFO, {"XDG_CACHE_HOME": str(xdg)}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(xdg / "daskperiment")
    assert list((xdg / "daskperiment").glob("cpuinfo-*.json"))
    assert not (tmp_path / "home").exists()  # nothing written to ~/.cache


def test_user_cache_without_xdg_is_the_platform_default(tmp_path: Path) -> None:
    done = run_python(CACHE_CPU_INFO, {}, tmp_path)
    assert done.returncode == 0, done.stderr
    expected = tmp_path / "home" / ".cache" / "daskperiment"  # Linux: ~/.cache
    assert done.stdout.strip() == str(expected)
    assert list(expected.glob("cpuinfo-*.json"))


def test_daskperiment_cache_dir_wins_over_xdg_cache_home(tmp_path: Path) -> None:
    xdg, own = tmp_path / "xdg-cache", tmp_path / "own-cache"
    done = run_python(CACHE_CPU_INFO, {"XDG_CACHE_HOME": str(xdg), "DASKPERIMENT_CACHE_DIR": str(own)}, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(own)
    assert list(own.glob("cpuinfo-*.json"))
    assert not xdg.exists()


# -- distributed and GitPython are optional ----------------------------------------------

WITHOUT_OPTIONAL = (
    "import sys\n"
    "for name in ('git', 'distributed'):\n"
    "    sys.modules[name] = None  # as if not installed: importing it raises ImportError\n"
    "import daskperiment\n"
    "ex = daskperiment.Experiment('no_extras', script_mode=False)\n"
    "a = ex.parameter('a')\n"
    "@ex.result\n"
    "def double(a):\n"
    "    return 2 * a\n"
    "ex.set_parameters(a=21)\n"
    "print(double(a).compute())\n"
    "print(ex.get_environment(category='git'))\n"
    "print(sorted(name for name in sys.modules if name.split('.')[0] in ('git', 'distributed')\n"
    "             and sys.modules[name] is not None))\n"
)


def test_a_trial_runs_without_distributed_and_gitpython(tmp_path: Path) -> None:
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    done = run_python(WITHOUT_OPTIONAL, {"DASKPERIMENT_CACHE_DIR": str(tmp_path / "cache")}, tmp_path)
    assert done.returncode == 0, done.stderr
    result, git_text, imported = done.stdout.strip().splitlines()
    assert result == "42"
    assert git_text == 'Git Repository: not captured, GitPython is not installed (pip install "daskperiment[git]")'
    assert imported == "[]"
    assert list((tmp_path / "daskperiment_cache" / "no_extras").iterdir())


def test_git_collector_without_the_git_executable(tmp_path: Path) -> None:
    code = (
        "from daskperiment.collector import collect_environment, environment_text\n"
        "from daskperiment.collector.git import GitCollector\n"
        "environment = collect_environment([GitCollector()])\n"
        "print(environment['git'])\n"
        "print(environment_text(environment).splitlines()[-1])\n"
    )
    done = run_python(code, {"PATH": str(tmp_path / "empty-bin")}, tmp_path)
    assert done.returncode == 0, done.stderr
    data, summary = done.stdout.strip().splitlines()
    assert data == "{'unavailable': 'not captured, the git executable is not on the PATH'}"
    assert summary == "Git Repository: not captured, the git executable is not on the PATH"
