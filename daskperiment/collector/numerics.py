"""Build and dependency reports of numpy, scipy and pandas, as they print them."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import os
import sys
import threading
from typing import Any, Callable, ClassVar, TextIO

from daskperiment.collector.base import Collector
from daskperiment.collector.diskcache import cached
from daskperiment.collector.packages import installed_packages


class _ThreadStdout:
    """Stands in for ``sys.stdout``: keeps what one thread writes, passes the rest on.

    Collection runs in a background thread, so a plain redirection of
    ``sys.stdout`` would also swallow whatever the user prints meanwhile.
    """

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream
        self.captured = io.StringIO()
        self._thread = threading.get_ident()

    def write(self, text: str) -> int:
        if threading.get_ident() == self._thread:
            return self.captured.write(text)
        return self.stream.write(text) if self.stream is not None else len(text)

    def flush(self) -> None:
        if threading.get_ident() != self._thread and self.stream is not None:
            self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


_capture_lock = threading.Lock()


def _reset_after_fork() -> None:
    global _capture_lock
    _capture_lock = threading.Lock()
    while isinstance(sys.stdout, _ThreadStdout):  # forked in the middle of a capture
        sys.stdout = sys.stdout.stream


os.register_at_fork(after_in_child=_reset_after_fork)


def captured_stdout(function: Callable[[], object]) -> str:
    """Run ``function`` and return what it printed to ``sys.stdout``.

    Only output of the calling thread is captured; other threads keep
    printing to the real ``sys.stdout``.

    Parameters
    ----------
    function : callable
        Called without arguments; its return value is ignored.

    Returns
    -------
    str
        The captured text.
    """
    with _capture_lock:
        capture = _ThreadStdout(sys.stdout)
        with contextlib.redirect_stdout(capture):  # type: ignore[type-var]
            function()
    return capture.captured.getvalue()


class _ReportCollector(Collector):
    """The text a package prints about its build or dependencies."""

    module: ClassVar[str]
    function: ClassVar[str]

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
            ``version`` of the package and the printed ``text``.
        """
        installed = [(p["name"], p["version"]) for p in installed_packages()]
        key = json.dumps([self.module, sys.version, sys.prefix, installed])
        return cached(f"{self.module}-report", key, self._report)

    def _report(self) -> dict[str, Any]:
        package = importlib.import_module(self.module)
        return {
            "version": str(package.__version__),
            "text": captured_stdout(getattr(package, self.function)),
        }


class NumpyCollector(_ReportCollector):
    """``numpy.show_config()``: BLAS/LAPACK, compilers and SIMD extensions of numpy."""

    category = "numpy"
    module = "numpy"
    function = "show_config"


class ScipyCollector(_ReportCollector):
    """``scipy.show_config()``: BLAS/LAPACK and compilers of scipy."""

    category = "scipy"
    module = "scipy"
    function = "show_config"


class PandasCollector(_ReportCollector):
    """``pandas.show_versions()``: pandas and the versions of its optional dependencies."""

    category = "pandas"
    module = "pandas"
    function = "show_versions"
