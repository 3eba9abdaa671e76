"""The Python interpreter, how it is used, and the daskperiment in use."""

from __future__ import annotations

import importlib.metadata
import platform
import sys
from pathlib import Path
from typing import Any

from daskperiment.collector.base import Collector

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


def shell_mode() -> str:
    """How this interpreter is being used.

    Returns
    -------
    str
        ``"jupyter"`` inside a Jupyter kernel, ``"interactive"`` in an
        interactive shell (IPython terminal, ``python -i`` or the plain REPL),
        ``"script"`` otherwise.
    """
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is not None:
        names = {cls.__name__ for cls in type(shell).__mro__}
        return "jupyter" if "ZMQInteractiveShell" in names else "interactive"
    if hasattr(sys, "ps1") or sys.flags.interactive:
        return "interactive"
    return "script"


def daskperiment_version() -> str:
    """Version of the daskperiment package this code belongs to.

    The ``__version__`` of the imported package wins over installed metadata,
    which may describe another copy (e.g. when running from a source tree).

    Returns
    -------
    str
        The version, or ``"unknown"`` when it cannot be determined.
    """
    version = getattr(sys.modules.get("daskperiment"), "__version__", None)
    if isinstance(version, str):
        return version
    try:
        return importlib.metadata.version("daskperiment")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class PythonCollector(Collector):
    """Implementation, version and executable of Python, and daskperiment's version."""

    category = "python"
    labels = {
        "implementation": "Python Implementation",
        "version": "Python Version",
        "executable": "Python Executable",
        "venv": "Python venv",
        "shell": "Python Shell Mode",
        "daskperiment_version": "Daskperiment Version",
        "daskperiment_path": "Daskperiment Path",
    }

    def collect(self) -> dict[str, Any]:
        """Gather the interpreter facts.

        Returns
        -------
        dict of str to Any
            ``implementation``, ``version``, ``executable``, ``venv`` (whether
            it runs in a virtual environment), ``shell``,
            ``daskperiment_version`` and ``daskperiment_path``.
        """
        return {
            "implementation": platform.python_implementation(),
            "version": platform.python_version(),
            "executable": sys.executable,
            "venv": sys.prefix != sys.base_prefix,
            "shell": shell_mode(),
            "daskperiment_version": daskperiment_version(),
            "daskperiment_path": str(_PACKAGE_DIR),
        }
