"""The environment of a trial: captured once per process, rendered as text, diffed."""

from __future__ import annotations

import difflib
import json
import logging
import os
import sys
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Sequence

from daskperiment.collector.base import Collector
from daskperiment.collector.conda import CondaCollector
from daskperiment.collector.cpu import CPUCollector
from daskperiment.collector.git import GitCollector
from daskperiment.collector.numerics import NumpyCollector, PandasCollector, ScipyCollector
from daskperiment.collector.packages import PackagesCollector
from daskperiment.collector.platform import PlatformCollector
from daskperiment.collector.python import PythonCollector

logger = logging.getLogger(__name__)

DEFAULT_COLLECTORS: tuple[Collector, ...] = (
    PlatformCollector(),
    CPUCollector(),
    PythonCollector(),
    PackagesCollector(),
    GitCollector(),
    NumpyCollector(),
    ScipyCollector(),
    PandasCollector(),
    CondaCollector(),
)
"""The collectors :func:`collect_environment` runs, in the order of their categories."""

_LABELS = {collector.category: collector.labels for collector in DEFAULT_COLLECTORS}
_SUMMARY_CATEGORIES = ("platform", "cpu", "python")
_ABSENT = {
    "git": [("Git Repository", "not a git repository")],
    "conda": [("Conda", "not installed (no conda executable on the PATH)")],
}
"""What a category that captured nothing says, as daskperiment 0.5 did, instead of an error."""
REQUIREMENTS = "requirements"
"""The category of the pip-freeze list (``name==version``), rendered from ``packages``."""


def collect_environment(collectors: Sequence[Collector] | None = None) -> dict[str, dict[str, Any]]:
    """Run every available collector.

    Collection never fails as a whole: a collector that raises is logged at
    WARNING and its category holds ``{"error": "<ExcType>(<message>)"}``.

    Parameters
    ----------
    collectors : sequence of Collector, optional
        The collectors to run; :data:`DEFAULT_COLLECTORS` by default.

    Returns
    -------
    dict of str to dict
        ``{category: data}`` in the order of ``collectors``. Categories whose
        collector is unavailable or has nothing to report are absent.
    """
    started = time.perf_counter()
    environment: dict[str, dict[str, Any]] = {}
    for collector in DEFAULT_COLLECTORS if collectors is None else collectors:
        try:
            if not collector.available():
                continue
            data = collector.collect()
        except Exception as exc:
            error = f"{type(exc).__name__}({exc})"
            logger.warning(
                "environment category %r could not be collected: %s",
                collector.category,
                error,
                exc_info=logger.isEnabledFor(logging.DEBUG),
            )
            environment[collector.category] = {"error": error}
            continue
        if data:
            environment[collector.category] = data
    logger.debug("environment collected in %.3f s", time.perf_counter() - started)
    return environment


_future_lock = threading.Lock()
_future: tuple[int, Future[dict[str, dict[str, Any]]]] | None = None


def _reset_lock_after_fork() -> None:
    global _future_lock
    _future_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_lock_after_fork)


def _collect_into(future: Future[dict[str, dict[str, Any]]], numpy_imported: bool) -> None:
    collectors = [
        NumpyCollector(blas_threads=False) if isinstance(c, NumpyCollector) and not numpy_imported else c
        for c in DEFAULT_COLLECTORS
    ]
    try:
        future.set_result(collect_environment(collectors))
    except BaseException as exc:  # the future must never be left pending
        future.set_exception(exc)


def environment_future() -> Future[dict[str, dict[str, Any]]]:
    """The environment of this process, collected once in a background thread.

    The first call starts :func:`collect_environment` in a daemon thread;
    later calls return the same future. A process forked from this one starts
    its own collection on its first call. The BLAS thread counts of numpy are
    collected when numpy is imported at the first call (decided then, so the
    record does not depend on how fast the thread runs): a process that does
    not use numpy is not made to import it.

    Returns
    -------
    concurrent.futures.Future
        Resolves to the result of :func:`collect_environment`.
    """
    global _future
    with _future_lock:
        if _future is None or _future[0] != os.getpid():
            future: Future[dict[str, dict[str, Any]]] = Future()
            future.set_running_or_notify_cancel()  # nobody can cancel it any more
            numpy_imported = "numpy" in sys.modules
            threading.Thread(
                target=_collect_into, args=(future, numpy_imported), name="daskperiment-environment",
                daemon=True,
            ).start()
            _future = (os.getpid(), future)
        return _future[1]


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key}={_text(item)}" for key, item in value.items()) or "(none)"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(item) for item in value) or "(none)"
    return str(value)


def _label(category: str, key: str) -> str:
    label = _LABELS.get(category, {}).get(key)
    if label is None:
        title = category.upper() if len(category) <= 3 else category.title()
        label = f"{title} {key.replace('_', ' ').title()}"
    return label


def _facts(category: str, data: dict[str, Any]) -> list[tuple[str, str]]:
    return [(_label(category, key), _text(value)) for key, value in data.items()]


def _aligned(facts: list[tuple[str, str]]) -> list[str]:
    width = max((len(label) for label, _ in facts), default=0) + 1
    return [f"{label + ':':<{width}} {value}" for label, value in facts]


def _package_lines(category: str, data: dict[str, Any]) -> list[str]:
    return [f"{p['name']}=={p['version']} ({p['location']})" for p in data["packages"]]


def _tree_lines(value: Any, depth: int = 0) -> list[str]:
    """Nested mappings and lists as indented ``key: value`` and ``- item`` lines."""
    pad = "  " * depth
    if not isinstance(value, (dict, list)) or not value:
        return [f"{pad}{_text(value)}"]
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.extend([f"{pad}{key}:", *_tree_lines(item, depth + 1)])
            else:
                lines.append(f"{pad}{key}: {_text(item)}".rstrip())
        return lines
    for item in value:
        first, *rest = _tree_lines(item, depth + 1)
        lines.extend([f"{pad}- {first.lstrip()}", *rest])
    return lines


def _report_lines(category: str, data: dict[str, Any]) -> list[str]:
    lines = [f"{category} version: {data['version']}"]
    if "config" in data:
        lines.extend(_tree_lines(data["config"]))
    else:  # recorded before the reports were read as data: the text the package printed
        lines.extend(line.rstrip() for line in data["text"].strip("\n").splitlines())
    if "blas_threads" in data:
        lines.extend(["BLAS threads (threadpoolctl):", *_tree_lines(data["blas_threads"], 1)])
    return lines


def _json_lines(category: str, data: dict[str, Any]) -> list[str]:
    return json.dumps(data, indent=2, default=str).splitlines()


_RENDERERS: dict[str, Callable[[str, dict[str, Any]], list[str]]] = {
    "packages": _package_lines,
    "numpy": _report_lines,
    "scipy": _report_lines,
    "pandas": _report_lines,
    "conda": _json_lines,
}


def _is_error(data: dict[str, Any]) -> bool:
    return list(data) == ["error"]


def _category_lines(category: str, data: dict[str, Any]) -> list[str]:
    render = _RENDERERS.get(category)
    if render is None or _is_error(data):
        return _aligned(_facts(category, data))
    return render(category, data)


def _summary(environment: dict[str, dict[str, Any]]) -> list[str]:
    facts: list[tuple[str, str]] = []
    for category in _SUMMARY_CATEGORIES:
        if category in environment:
            facts.extend(_facts(category, environment[category]))
    packages = environment.get("packages")
    if packages is not None:
        if _is_error(packages):
            facts.extend(_facts("packages", packages))
        else:
            facts.append(("Number of Installed Python Packages", str(len(packages["packages"]))))
    if "git" in environment:
        facts.extend(_facts("git", environment["git"]))
    else:
        facts.extend(_ABSENT["git"])
    return _aligned(facts)


def environment_lines(environment: dict[str, dict[str, Any]], category: str | None = None) -> list[str]:
    """Human-readable lines describing an environment.

    Parameters
    ----------
    environment : dict of str to dict
        As returned by :func:`collect_environment` (or loaded back from JSON).
    category : str, optional
        Render this category in full: ``"Label: value"`` lines for platform,
        cpu, python and git, ``name==version (location)`` for packages,
        ``name==version`` for requirements (the pip-freeze list), the
        version and indented report of numpy, scipy and pandas (numpy's
        with its BLAS threads), the JSON for conda.
        By default, a summary: the facts of platform, cpu, python, the
        number of installed packages and the facts of git. Outside a git
        repository, or without conda, git and conda say so in one line.

    Returns
    -------
    list of str
        The lines, without line endings.

    Raises
    ------
    ValueError
        When ``category`` is not one of the categories of ``environment``.
    """
    if category is None:
        return _summary(environment)
    if category == REQUIREMENTS:
        return python_packages(environment)
    if category not in environment and category in _ABSENT:
        return _aligned(_ABSENT[category])
    if category not in environment:
        known = ", ".join(environment) or "none"
        problem = "was not captured" if category in _LABELS else "is unknown"
        raise ValueError(
            f"environment category {category!r} {problem}; categories of this environment: {known}"
        )
    return _category_lines(category, environment[category])


def environment_text(environment: dict[str, dict[str, Any]], category: str | None = None) -> str:
    """The lines of :func:`environment_lines` joined by newlines, as daskperiment 0.5 returned them."""
    return "\n".join(environment_lines(environment, category))


def python_packages(environment: dict[str, dict[str, Any]]) -> list[str]:
    """Installed Python packages of an environment.

    Parameters
    ----------
    environment : dict of str to dict
        As returned by :func:`collect_environment`.

    Returns
    -------
    list of str
        ``"name==version"`` for each package, sorted case-insensitively;
        empty when the packages could not be collected.
    """
    packages = environment.get("packages", {}).get("packages", [])
    return sorted((f"{p['name']}=={p['version']}" for p in packages), key=str.lower)


def _full_lines(environment: dict[str, dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for category, data in environment.items():
        lines.append(f"[{category}]")
        lines.extend(_category_lines(category, data))
    return lines


def diff_packages(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> list[str]:
    """The installed packages that differ between two environments, as 0.5 listed them.

    Parameters
    ----------
    old, new : dict of str to dict
        Environments as returned by :func:`collect_environment`.

    Returns
    -------
    list of str
        ``-name version (location)`` for each package gone or changed from
        ``old``, ``+name version (location)`` for each in ``new`` instead,
        by package name; empty when the packages are the same.
    """
    before = {_package_line(p) for p in old.get("packages", {}).get("packages", [])}
    after = {_package_line(p) for p in new.get("packages", {}).get("packages", [])}
    changed = [("-", line) for line in before - after] + [("+", line) for line in after - before]
    return [sign + line for sign, line in sorted(changed, key=lambda c: (c[1].lower(), c[0]))]


def _package_line(package: dict[str, str]) -> str:
    return f"{package['name']} {package['version']} ({package['location']})"


OPTIONAL_FACTS = (("numpy", "blas_threads"),)
"""Facts a process may not know (the BLAS threads of one that did not import numpy): no change when missing."""


def _known_to_both(
    old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """``old`` and ``new`` without the :data:`OPTIONAL_FACTS` only one of them has."""
    for category, key in OPTIONAL_FACTS:
        if category in old and category in new and (key in old[category]) != (key in new[category]):
            old = {**old, category: {k: v for k, v in old[category].items() if k != key}}
            new = {**new, category: {k: v for k, v in new[category].items() if k != key}}
    return old, new


def diff_environments(
    old: dict[str, dict[str, Any]],
    new: dict[str, dict[str, Any]],
    *,
    old_label: str = "old environment",
    new_label: str = "new environment",
    skip: tuple[str, ...] = (),
) -> str:
    """Unified diff of the full rendering of two environments.

    Parameters
    ----------
    old, new : dict of str to dict
        Environments as returned by :func:`collect_environment`.
    old_label, new_label : str, optional
        Names of the two sides in the diff header, e.g. ``"environment of trial 3"``.
    skip : tuple of str, optional
        Categories left out of the diff (e.g. ``("packages",)``, reported by :func:`diff_packages`).

    Returns
    -------
    str
        The diff, ``""`` when both render the same.
    """
    old = {category: data for category, data in old.items() if category not in skip}
    new = {category: data for category, data in new.items() if category not in skip}
    old, new = _known_to_both(old, new)
    diff = difflib.unified_diff(
        _full_lines(old), _full_lines(new), fromfile=old_label, tofile=new_label, lineterm=""
    )
    return "\n".join(diff)
