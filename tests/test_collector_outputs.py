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
