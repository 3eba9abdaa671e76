"""Script mode: a script run as a file runs one trial per call of its ``@ex.result`` step.

``python my_experiment.py a=1 b="'text'" --seed 1`` sets the parameters from
the ``name=value`` arguments (Python literals, read with :func:`ast.literal_eval`;
a bare word is a string), computes the trial and returns its result where the
step was called. Imported, or run in Jupyter, IPython or an interactive
interpreter, the same script only builds its graph; so does a script whose
experiment opts out (``Experiment(..., script_mode=False)``, or
``DASKPERIMENT_SCRIPT_MODE=0`` in the environment).
"""

from __future__ import annotations

import ast
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from daskperiment.parameter import Undefined
from daskperiment.seeding import SEED_LIMIT, validate_seed

if TYPE_CHECKING:
    from daskperiment.experiment import Experiment
    from daskperiment.trial import TrialResult

logger = logging.getLogger(__name__)

USAGE_EXIT_STATUS = 2
_MALFORMED_STARTS = ("=", "[", "(", "{", "'", '"')
_NUMBER_START = re.compile(r"[+-]?\.?\d")
"""Text starting like a number: not a bare word, it must be a literal."""
_FLOAT_WORDS = {f"{sign}{word}" for sign in ("", "+", "-") for word in ("nan", "inf", "infinity")}
"""Words for floats that are not Python literals (any case)."""

ResultRunner = Callable[["TrialResult", "Experiment"], Any]
"""Runs what a call of an ``@ex.result`` step asks for in script mode, returns the call's value."""

_result_runner: ResultRunner | None = None


class UsageError(ValueError):
    """The command-line arguments of a script-mode run are malformed."""


@dataclass
class ScriptArguments:
    """What the command line of a script-mode run asks for."""

    parameters: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    progress: bool = False
    help: bool = False
    cache: bool = True


SCRIPT_MODE_VARIABLE = "DASKPERIMENT_SCRIPT_MODE"
_OFF = ("0", "false", "no", "off")


def script_mode_default() -> bool:
    """Whether experiments use script mode unless told otherwise.

    ``$DASKPERIMENT_SCRIPT_MODE`` set to ``0``, ``false``, ``no`` or ``off``
    (any case) turns it off.
    """
    return os.environ.get(SCRIPT_MODE_VARIABLE, "").strip().lower() not in _OFF


def script_mode_active(func: Callable) -> bool:
    """Whether calling the result step ``func`` should run a trial at once.

    True when the ``__main__`` module is a file being executed (``python
    script.py`` or ``daskperiment run script.py``), ``func`` is defined in it,
    and the interpreter is neither interactive nor IPython/Jupyter.
    """
    if getattr(func, "__module__", None) != "__main__":
        return False
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    if not path or not os.path.isfile(path):  # `python -c`, `python - < file`, a REPL
        return False
    if sys.flags.interactive or hasattr(sys, "ps1"):
        return False
    return not _in_ipython()


def _in_ipython() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    get_ipython = getattr(ipython, "get_ipython", None)
    return get_ipython is not None and get_ipython() is not None


def parse_value(text: str) -> Any:
    """The Python literal ``text`` denotes; a bare word is a string.

    Nothing is evaluated: ``ast.literal_eval`` reads literals only (no
    operators but a sign and complex sums), so ``10**10**10`` is refused at once.

    Raises
    ------
    UsageError
        When ``text`` is empty, holds a float beyond the range of floats
        (``1e309``), or is not a literal but starts like one: like a number
        (``0.1e``, ``1+``, ``10**10**10``), with ``=``, a bracket or a quote;
        or is a word for a float that is not a literal (``nan``, ``inf``).
        Quoted (``"'0.1e'"``), each is a string.
    """
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    else:
        if not _finite(value):
            raise UsageError(
                f"{_shortened(text)!r} is beyond the range of floats (it would be inf): give a "
                f"smaller number, or quote it to pass a string, e.g. \"'{_shortened(text)}'\""
            )
        return value
    word = text.strip()
    if not word:
        raise UsageError("empty value: give one, e.g. name=0, or name=\"''\" for an empty string")
    if word.startswith(_MALFORMED_STARTS) or _NUMBER_START.match(word) or word.lower() in _FLOAT_WORDS:
        raise UsageError(
            f"{_shortened(text)!r} is not a valid Python literal (values are read as literals, "
            "never evaluated): write numbers as 1, -0.5 or 1e-3, lists as [1,2], and quote "
            f"strings, protected from the shell, e.g. \"'{_shortened(text)}'\" to pass this text "
            "as a string"
        )
    return text


def _shortened(text: str, limit: int = 60) -> str:
    """``text`` cut to ``limit`` characters (with ``...``) for a message."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _finite(value: Any) -> bool:
    """Whether no float in ``value`` (a literal: numbers, str, containers of them) is inf or nan."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, complex):
        return math.isfinite(value.real) and math.isfinite(value.imag)
    if isinstance(value, dict):
        return all(_finite(k) and _finite(v) for k, v in value.items())
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(_finite(item) for item in value)
    return True


def parse_arguments(args: Sequence[str]) -> ScriptArguments:
    """Parse ``name=value`` arguments, ``--seed N`` (anywhere), ``--progress`` and ``--no-cache``.

    Raises
    ------
    UsageError
        For any malformed argument; nothing is applied.
    """
    parsed = ScriptArguments()
    remaining = list(args)
    while remaining:
        arg = remaining.pop(0)
        if arg in ("-h", "--help"):
            parsed.help = True
        elif arg == "--progress":
            parsed.progress = True
        elif arg == "--no-cache":
            parsed.cache = False
        elif arg == "--seed" or arg.startswith("--seed="):
            if parsed.seed is not None:
                raise UsageError("--seed is given twice: give it once")
            if arg == "--seed":
                if not remaining:
                    raise UsageError("--seed needs a value, e.g. --seed 1")
                text = remaining.pop(0)
            else:
                text = arg[len("--seed="):]
            parsed.seed = parse_seed(text)
        elif arg.startswith("-") and "=" not in arg:
            raise UsageError(
                f"unknown option {arg!r}: the options are --seed N, --progress and --no-cache"
            )
        else:
            name, value = _parse_assignment(arg)
            if name in parsed.parameters:
                raise UsageError(f"parameter {name!r} is given twice: give it once")
            parsed.parameters[name] = value
    return parsed


def parse_seed(text: str) -> int:
    """The seed ``text`` denotes; a UsageError unless an integer from 0 to 2**32 - 1."""
    try:
        return int(validate_seed(int(text)))  # type: ignore[arg-type]
    except ValueError:
        raise UsageError(
            f"invalid seed {text!r}: use an integer from 0 to {SEED_LIMIT - 1}, e.g. --seed 1"
        ) from None


def split_assignment(arg: str) -> tuple[str, str]:
    """The parameter name and the value text of a ``name=value`` argument.

    Raises
    ------
    UsageError
        When ``arg`` is not of that form, or the name is not an identifier.
    """
    name, equals, text = arg.partition("=")
    if not equals:
        raise UsageError(f"{arg!r} is not of the form name=value, e.g. {arg}=1")
    if not name:
        raise UsageError(f"{arg!r} has no parameter name: write name=value, e.g. a{arg}")
    if not name.isidentifier():
        raise UsageError(
            f"invalid parameter name {name!r} in {arg!r}: use name=value with the name of a "
            "parameter, e.g. a=1"
        )
    if text.startswith("="):
        raise UsageError(f"{arg!r} has more than one '=' after the name: write {name}={text.lstrip('=')}")
    return name, text


def _parse_assignment(arg: str) -> tuple[str, Any]:
    name, text = split_assignment(arg)
    try:
        return name, parse_value(text)
    except UsageError as exc:
        raise UsageError(f"invalid value of parameter {name!r}: {exc}") from None


def _usage_line(program: str) -> str:
    return f"usage: {program} [name=value ...] [--seed N] [--progress] [--no-cache]"


def parameter_lines(experiment: Experiment) -> list[str]:
    """The ``parameters:`` section of a usage text: each parameter with its value, or required."""
    values = experiment.get_parameters()
    lines = ["parameters:"]
    lines.extend(
        f"  {name}  (required)" if value is Undefined else f"  {name}={value!r}"
        for name, value in values.items()
    )
    if not values:
        lines.append("  (none)")
    return lines


def usage(experiment: Experiment, program: str) -> str:
    """The usage text of a script-mode run, listing the experiment's parameters."""
    lines = [_usage_line(program), "", *parameter_lines(experiment)]
    lines += [
        "",
        "Values are Python literals (1, 0.5, True, None, [1, 2], {'k': 1}); a bare word is a string.",
        "Quote a string that starts like a number, or reads nan or inf, e.g. d=\"'2024-01-01'\".",
        "  --seed N     seed of random and numpy.random for the trial",
        "  --progress   show a progress bar on stderr while the trial computes",
        "  --no-cache   compute cached steps again instead of loading them from the step cache",
    ]
    return "\n".join(lines)


def usage_exit(usage_line: str, program: str, message: str) -> SystemExit:
    """Write ``usage_line`` and ``program: error: message`` on stderr; return the SystemExit (2)."""
    sys.stderr.write(f"{usage_line}\n{program}: error: {message}\n")
    return SystemExit(USAGE_EXIT_STATUS)


def _fail(program: str, message: str) -> SystemExit:
    return usage_exit(_usage_line(program), program, message)


@contextmanager
def result_runner(runner: ResultRunner) -> Iterator[None]:
    """Within the block, calls of ``@ex.result`` steps in script mode run ``runner`` instead of a trial.

    ``daskperiment sweep`` runs a script this way, so that its result call
    runs a sweep.
    """
    global _result_runner
    previous, _result_runner = _result_runner, runner
    try:
        yield
    finally:
        _result_runner = previous


def run_script_trial(result: TrialResult, experiment: Experiment) -> Any:
    """Run one trial of ``result`` as the command line of the script asks.

    Every argument is checked before the trial starts: a usage error records
    nothing.

    Returns
    -------
    Any
        The trial's result.

    Raises
    ------
    SystemExit
        Status 2 with a message on stderr for a usage error; status 0 after
        printing the usage for ``--help``.
    Exception
        Whatever a step raised; the trial is recorded as failed first.
    """
    if _result_runner is not None:
        return _result_runner(result, experiment)
    program = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "script"
    try:
        arguments = parse_arguments(sys.argv[1:])
    except UsageError as exc:
        raise _fail(program, str(exc)) from None
    if arguments.help:
        sys.stdout.write(usage(experiment, program) + "\n")
        raise SystemExit(0)
    try:
        check_parameters(experiment, result, arguments.parameters)
    except UsageError as exc:
        raise _fail(program, str(exc)) from None
    experiment.set_parameters(**arguments.parameters)
    with script_logging(), _progress_bar(arguments.progress):
        value = result.compute(seed=arguments.seed, cache=arguments.cache)
        logger.info("Result of trial %d of experiment %r: %r", experiment.trial_id, experiment.id, value)
    return value


@contextmanager
def script_logging() -> Iterator[None]:
    """Within the block, INFO messages of the ``daskperiment`` loggers go to stderr.

    Only when logging is not configured: with a handler on the root or the
    ``daskperiment`` logger nothing is added, and a level set on the
    ``daskperiment`` logger (e.g. ``logging.WARNING``) is kept.
    """
    package = logging.getLogger("daskperiment")
    if package.handlers or logging.getLogger().handlers:
        yield
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    level = package.level
    package.addHandler(handler)
    if level == logging.NOTSET:
        package.setLevel(logging.INFO)
    try:
        yield
    finally:
        package.removeHandler(handler)
        package.setLevel(level)


def check_parameters(experiment: Experiment, result: TrialResult, given: Iterable[str]) -> None:
    """Raise a UsageError for unknown names, or for parameters ``result`` needs without value.

    Parameters
    ----------
    experiment : Experiment
        The experiment of ``result``.
    result : TrialResult
        The output of its ``@ex.result`` step.
    given : iterable of str
        Names of the parameters the command line gives.
    """
    given = list(given)
    current = experiment.get_parameters()
    defined = ", ".join(current) or "none"
    unknown = [name for name in given if name not in current]
    if unknown:
        raise UsageError(
            f"unknown parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
            f"the parameters of experiment {experiment.id!r} are {defined}",
        )
    needed = result.parameter_names
    missing = [n for n in needed if n not in given and current[n] is Undefined]
    if missing:
        raise UsageError(
            f"parameter{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"{'have' if len(missing) > 1 else 'has'} no value and no default: give "
            f"{' '.join(f'{n}=VALUE' for n in missing)} on the command line",
        )


def _progress_bar(enabled: bool) -> AbstractContextManager[Any]:
    if not enabled:
        return nullcontext()
    from dask.diagnostics import ProgressBar

    return ProgressBar(out=sys.stderr)
