"""Build and dependency reports of numpy, scipy and pandas, read from their structured forms.

The reports are asked for as data (``show_config(mode="dicts")``,
``pandas.show_versions(as_json=path)``), never by capturing what a package
prints: nothing touches ``sys.stdout``, so output of other threads is left alone.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import logging
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

from daskperiment.collector.base import Collector
from daskperiment.collector.diskcache import cached
from daskperiment.collector.packages import installed_packages

logger = logging.getLogger(__name__)

BLAS_FACTS = ("internal_api", "version", "num_threads", "threading_layer", "architecture", "filepath")
"""What :func:`blas_threadpools` keeps of each BLAS library threadpoolctl finds."""


def blas_threadpools() -> list[dict[str, Any]] | None:
    """The BLAS libraries loaded in this process and their thread counts.

    Read with ``threadpoolctl.threadpool_info()`` after importing numpy (so
    its BLAS is loaded). Not cached: the thread count follows environment
    variables such as ``OMP_NUM_THREADS`` and can change while a process runs.

    Returns
    -------
    list of dict or None
        For each BLAS library, the :data:`BLAS_FACTS` threadpoolctl reports;
        ``None`` when threadpoolctl is not installed.
    """
    try:
        import threadpoolctl
    except ImportError:
        logger.debug("threadpoolctl is not installed: BLAS threads not collected")
        return None
    importlib.import_module("numpy")
    return [
        {fact: pool.get(fact) for fact in BLAS_FACTS}
        for pool in threadpoolctl.threadpool_info()
        if pool.get("user_api") == "blas"
    ]


class _ReportCollector(Collector):
    """A package's report on its build or dependencies, as data."""

    module: ClassVar[str]

    def available(self) -> bool:
        """Whether the package is installed (it is not imported to find out).

        Returns
        -------
        bool
            ``True`` when the package can be imported.
        """
        return importlib.util.find_spec(self.module) is not None

    def collect(self) -> dict[str, Any]:
        """The package's report, cached on disk while the installed packages stay the same.

        Producing a report imports the package (and for pandas its optional
        dependencies), which can take most of a second; the report only
        changes when an installed package does.

        Returns
        -------
        dict of str to Any
            ``version`` of the package and its ``config``, the report as nested
            mappings and lists of JSON values.
        """
        installed = [(p["name"], p["version"]) for p in installed_packages()]
        key = json.dumps([self.module, sys.version, sys.prefix, installed])
        return cached(f"{self.module}-config", key, self._report)

    def _report(self) -> dict[str, Any]:
        package = importlib.import_module(self.module)
        return {"version": str(package.__version__), "config": self.config(package)}

    def config(self, package: ModuleType) -> dict[str, Any]:
        """The report of the imported ``package``.

        Parameters
        ----------
        package : module
            The imported package.

        Returns
        -------
        dict of str to Any
            ``package.show_config(mode="dicts")``, which numpy and scipy provide.
        """
        return package.show_config(mode="dicts")


class NumpyCollector(_ReportCollector):
    """``numpy.show_config``: BLAS/LAPACK, compilers and SIMD extensions, plus BLAS threads.

    Parameters
    ----------
    blas_threads : bool, default True
        Also report the BLAS thread counts, which imports numpy (its BLAS must
        be loaded); the report itself is cached on disk, so without them a
        process that does not use numpy never imports it.
    """

    category = "numpy"
    module = "numpy"

    def __init__(self, blas_threads: bool = True) -> None:
        self.blas_threads = blas_threads

    def collect(self) -> dict[str, Any]:
        """The numpy report, with ``blas_threads`` when asked for and threadpoolctl is installed.

        Returns
        -------
        dict of str to Any
            ``version``, ``config`` and, with threadpoolctl, ``blas_threads``
            (see :func:`blas_threadpools`).
        """
        report = super().collect()
        threads = blas_threadpools() if self.blas_threads else None
        return report if threads is None else {**report, "blas_threads": threads}


class ScipyCollector(_ReportCollector):
    """``scipy.show_config``: BLAS/LAPACK and compilers of scipy."""

    category = "scipy"
    module = "scipy"


class PandasCollector(_ReportCollector):
    """``pandas.show_versions``: the system and the versions of pandas' optional dependencies."""

    category = "pandas"
    module = "pandas"

    def config(self, package: ModuleType) -> dict[str, Any]:
        """``pandas.show_versions(as_json=path)``, written to a temporary file and read back.

        Parameters
        ----------
        package : module
            The imported pandas.

        Returns
        -------
        dict of str to Any
            ``system`` and ``dependencies``, as pandas reports them.
        """
        with tempfile.TemporaryDirectory(prefix="daskperiment-pandas-") as folder:
            path = Path(folder) / "versions.json"
            package.show_versions(as_json=str(path))
            return json.loads(path.read_text(encoding="utf-8"))
