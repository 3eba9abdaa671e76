"""Seeding ``random`` and ``numpy.random`` so that trials can be repeated."""

from __future__ import annotations

import logging
import os
import random
import secrets
import sys
import threading
import zlib
from types import ModuleType

logger = logging.getLogger(__name__)

_SEED_BITS = 32
SEED_LIMIT = 2**_SEED_BITS


def validate_seed(seed: object) -> int | None:
    """Return ``seed`` as an int in ``[0, 2**32)`` (or None), or raise a clear error."""
    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"invalid seed {seed!r}: use an integer from 0 to {SEED_LIMIT - 1}")
    return int(seed)


def choose_seed(seed: int | None, default: int | None, level: int = logging.INFO) -> int:
    """The seed of a trial: the given one, else the experiment's default, else a new random one.

    The choice is logged at ``level`` (0.5's messages: "Random seed is
    initialized with given seed: N" or "... not provided, initialized with
    generated seed: N").
    """
    chosen = validate_seed(seed)
    if chosen is None:
        chosen = validate_seed(default)
    if chosen is None:
        chosen = _generated_seed()
        logger.log(level, "Random seed is not provided, initialized with generated seed: %d", chosen)
    else:
        logger.log(level, "Random seed is initialized with given seed: %d", chosen)
    return chosen


_generator: tuple[int, random.Random] | None = None
"""This process's id and the generator of its trials' seeds (another id: a forked child, whose
generator is made anew so that it draws other seeds than its parent)."""


def _generated_seed() -> int:
    """A new seed in ``[0, 2**32)``, drawn from a generator no seeding of ``random`` touches.

    The generator is seeded from the operating system's randomness once per
    process (cheaper than asking it for every trial).
    """
    global _generator
    pid = os.getpid()
    if _generator is None or _generator[0] != pid:
        _generator = (pid, random.Random(secrets.randbits(128)))
    return _generator[1].getrandbits(_SEED_BITS)


def seed_everything(seed: int) -> None:
    """Seed ``random`` and ``numpy.random`` (global state) with ``seed``.

    numpy is not imported for this (it takes a quarter of a second in a new
    process): when it is not imported yet, ``numpy.random`` is seeded with
    the seed of the latest call as soon as numpy is imported (a step that
    imports it finds it seeded, in the state an earlier seeding would have
    left it in, since nothing could draw from it before).
    """
    global _numpy_seed
    random.seed(seed)
    if "numpy" in sys.modules:
        import numpy  # imported already (or being imported by another thread: wait for it)

        numpy.random.seed(seed)
        return
    with _numpy_lock:
        _numpy_seed, waiting = seed, _numpy_seed is not None
    if not waiting:
        from wrapt import register_post_import_hook

        register_post_import_hook(_seed_numpy_on_import, "numpy")


def _seed_numpy_on_import(numpy: ModuleType) -> None:
    """Seed ``numpy.random`` with the seed numpy waited for (called once numpy is imported)."""
    global _numpy_seed
    with _numpy_lock:
        seed, _numpy_seed = _numpy_seed, None
    if seed is not None:
        numpy.random.seed(seed)


_numpy_seed: int | None = None
"""The seed ``numpy.random`` gets when numpy is imported (None: no seeding waits for it)."""
_numpy_lock = threading.Lock()


def step_seed(seed: int, step_name: str) -> int:
    """Seed for a step running in another process: derived from the trial seed and the step."""
    return zlib.crc32(step_name.encode("utf-8"), seed) % SEED_LIMIT

