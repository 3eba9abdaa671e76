"""0.5's log messages of a trial: started, finished, failed.

A trial on its own logs them at INFO (its failure at ERROR); the trials of a
sweep or search log them at DEBUG, the sweep logging one INFO line when it
starts and one when it finishes instead.
"""

from __future__ import annotations

import logging

from daskperiment.outcome import TrialOutcome
from daskperiment.writer import describe_error

logger = logging.getLogger(__name__)


def trial_log_level(sweep_id: str | None) -> int:
    """Level of a trial's start and finish messages: INFO alone, DEBUG within a sweep or search.

    A sweep logs one INFO line when it starts and one when it finishes instead.
    """
    return logging.INFO if sweep_id is None else logging.DEBUG


def log_started(trial_id: int, sweep_id: str | None) -> None:
    """Log 0.5's ``Started Experiment (trial id=N)``."""
    logger.log(trial_log_level(sweep_id), "Started Experiment (trial id=%d)", trial_id)


def log_finished(outcome: TrialOutcome, sweep_id: str | None) -> None:
    """Log 0.5's ``Finished Experiment (trial id=N)``, or ``Experiment failed: Error(...)`` at ERROR."""
    if outcome.error is None:
        logger.log(trial_log_level(sweep_id), "Finished Experiment (trial id=%d)", outcome.trial_id)
    elif sweep_id is None:
        logger.error("Experiment failed: %s", describe_error(outcome.error))
    else:
        logger.debug("Experiment failed (trial id=%d): %s", outcome.trial_id, describe_error(outcome.error))
