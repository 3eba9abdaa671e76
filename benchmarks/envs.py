"""Virtual environments of the systems under test, outside the repository.

Each peer gets its own venv under ``~/.cache/daskperiment-bench/venvs/<name>``
(or ``$DASKPERIMENT_BENCH_CACHE/venvs``), created on first use with pip from the
package index and re-used while its requirement list is unchanged (a marker
file holds the list). Ours and the floor run in the current interpreter.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent

ORIGINAL_REQUIREMENTS = (
    "daskperiment==0.5.0",
    # The newest versions under which 0.5.0 imports and runs on Python 3.11:
    "pandas==1.5.3",       # 2.x removed APIs 0.5.0 uses
    "numpy==1.26.4",       # pandas 1.5.3 is built against numpy 1.x
    "dask==2023.3.2",
    "setuptools<70",       # 0.5.0 lists packages through pkg_resources
    "redis==5.3.1",
    "pymongo==4.20.0",
)
MLFLOW_REQUIREMENTS = (
    "mlflow-skinny==3.17.2", "sqlalchemy==2.1.9", "alembic==1.20.1", "pandas", "dask",
)
SACRED_REQUIREMENTS = ("sacred==0.8.7", "numpy", "pandas", "dask", "pymongo==4.20.0")

REQUIREMENTS: dict[str, tuple[str, ...]] = {
    "original": ORIGINAL_REQUIREMENTS,
    "mlflow": MLFLOW_REQUIREMENTS,
    "sacred": SACRED_REQUIREMENTS,
}


@dataclass
class Interpreter:
    """How to run a system: its Python, its PYTHONPATH, or why it cannot run."""

    python: str | None
    pythonpath: str | None = None
    unavailable: str | None = None
    versions: str = ""


def cache_root() -> Path:
    """Folder of the venvs and scratch data (never inside the repository)."""
    root = os.environ.get("DASKPERIMENT_BENCH_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "daskperiment-bench"


def ensure_venv(name: str, log) -> Interpreter:
    """The venv of peer ``name``, created or updated if its requirements changed."""
    folder = cache_root() / "venvs" / name
    python = folder / "bin" / "python"
    marker = folder / ".bench-requirements"
    wanted = "\n".join(REQUIREMENTS[name])
    try:
        if not (python.exists() and marker.exists() and marker.read_text() == wanted):
            log(f"setting up the {name} venv in {folder} (first use) ...")
            if not python.exists():
                venv.EnvBuilder(with_pip=True, clear=True).create(folder)
            done = subprocess.run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                 *REQUIREMENTS[name]],
                capture_output=True, text=True, timeout=1200, check=False,
            )
            if done.returncode != 0:
                errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
                raise RuntimeError((errors or done.stderr.splitlines()[-1:] or ["pip failed"])[-1])
            marker.write_text(wanted)
    except Exception as exc:  # noqa: BLE001 - reported in the table
        return Interpreter(None, unavailable=f"cannot install: {str(exc)[:200]}")
    return Interpreter(str(python), versions=_versions(str(python), name))


def _versions(python: str, name: str) -> str:
    packages = {"original": "daskperiment pandas dask numpy", "mlflow": "mlflow-skinny dask",
                "sacred": "sacred dask"}[name].split()
    code = (
        "import importlib.metadata as m, sys\n"
        "print(' '.join(f'{p}=={m.version(p)}' for p in sys.argv[1:]))"
    )
    # cwd: not the repository, whose daskperiment.egg-info would answer for "daskperiment"
    done = subprocess.run([python, "-c", code, *packages], capture_output=True, text=True,
                          cwd=cache_root(), check=False)
    return done.stdout.strip()


def interpreters(systems: list[str], log) -> dict[str, Interpreter]:
    """The interpreter of each system (peers' venvs are created when missing)."""
    found: dict[str, Interpreter] = {}
    for system in systems:
        if system in ("ours", "floor"):
            found[system] = Interpreter(sys.executable, pythonpath=str(REPOSITORY))
        else:
            found[system] = ensure_venv(system, log)
    return found
