"""The figures at the top of the dashboard: trials, success rate, best result, last trial."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from daskperiment.board.cells import numeric

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Summary:
    """What the summary cards show."""

    trials: int
    succeeded: int
    best_trial: int | None
    """Trial with the best numeric result among the successful ones (None if there is none)."""
    best_result: float | None
    best_parameters: dict[str, Any]
    last_finished: pd.Timestamp | None

    @property
    def success_rate(self) -> float | None:
        """Fraction of trials that succeeded (None without trials)."""
        return self.succeeded / self.trials if self.trials else None


def summarize(frame: pd.DataFrame, parameters: list[str], best: Literal["min", "max"] = "min") -> Summary:
    """Summary of the history ``frame``.

    Parameters
    ----------
    frame : pandas.DataFrame
        The history table, indexed by trial id.
    parameters : list of str
        Its parameter columns.
    best : {"min", "max"}, default "min"
        Whether the best result is the lowest (a loss) or the highest (a score).

    Raises
    ------
    ValueError
        For another value of ``best``.
    """
    if best not in ("min", "max"):
        raise ValueError(f"best must be 'min' or 'max', not {best!r}")
    results = numeric(frame["Result"])[frame["Success"].to_numpy(dtype=bool)].dropna()
    best_trial = best_result = None
    best_parameters: dict[str, Any] = {}
    if not results.empty:
        best_trial = int(results.idxmin() if best == "min" else results.idxmax())
        best_result = float(results[best_trial])
        row = frame.loc[best_trial]
        best_parameters = {name: row[name] for name in parameters if name in frame.columns}
    return Summary(
        trials=len(frame),
        succeeded=int(frame["Success"].sum()),
        best_trial=best_trial,
        best_result=best_result,
        best_parameters=best_parameters,
        last_finished=frame["Finished"].max() if len(frame) else None,
    )
