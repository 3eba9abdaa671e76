"""What the views of a dashboard page share: the session's state, and how their callbacks run."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from daskperiment.errors import DaskperimentError

if TYPE_CHECKING:
    import pandas as pd
    from bokeh.models import InlineStyleSheet

    from daskperiment.board.filters import Brush
    from daskperiment.board.store import TrialCache
    from daskperiment.direction import Direction

logger = logging.getLogger(__name__)


class Guard:
    """Runs a page's callbacks: never while the page itself changes its widgets, and a store
    that fails is reported (``on_store_error``) instead of breaking the page.

    Parameters
    ----------
    on_store_error : callable
        Called with the error when a callback cannot read or write the store.
    """

    def __init__(self, on_store_error: Callable[[DaskperimentError], None]) -> None:
        self._on_store_error = on_store_error
        self._syncing = False

    def on_change(self, update: Callable[[], None]) -> Callable[[str, Any, Any], None]:
        """A property callback running ``update`` when the user changed the property."""

        def callback(attribute: str, old: Any, new: Any) -> None:
            if not self._syncing:
                self.run(update)

        return callback

    def on_click(self, update: Callable[[], None]) -> Callable[..., None]:
        """A click or event callback running ``update``."""
        return lambda *event: self.run(update)

    def run(self, update: Callable[[], None]) -> None:
        """Run ``update``, reporting a store that fails."""
        try:
            update()
        except DaskperimentError as exc:  # the store went away: say so, keep the page alive
            self._on_store_error(exc)

    def set(self, model: Any, attribute: str, value: Any) -> None:
        """Set a property of a widget without running its callbacks."""
        self._syncing = True
        try:
            setattr(model, attribute, value)
        finally:
            self._syncing = False


class Session(Protocol):
    """The state of one dashboard page, as its views read and change it."""

    cache: TrialCache
    guard: Guard
    style: InlineStyleSheet
    """The page's style sheet (:data:`daskperiment.board.render.STYLE`), for the views' HTML."""

    @property
    def selection(self) -> list[int]:
        """The selected trial ids, sorted."""

    def direction(self) -> Direction:
        """Whether lower or higher results are best (the stored direction, else the default)."""

    def chart_backend(self) -> str:
        """How charts are drawn: ``"canvas"`` (saved as PNG) or ``"svg"`` (saved as SVG)."""

    def redraw(self) -> None:
        """Redraw every view from the cache now (this page changed what the store holds)."""

    def select(self, trial_ids: Iterable[int]) -> None:
        """Make ``trial_ids`` the selection."""

    def toggle(self, trial_ids: Iterable[int]) -> None:
        """Unselect ``trial_ids`` when all are selected, else add them to the selection."""

    def scope(self) -> pd.DataFrame:
        """The history rows of the chosen sweep (of every trial when none is chosen)."""

    def matching(self, brushed: bool = True) -> pd.DataFrame:
        """The history rows passing the table's filters (with its brushes, unless ``brushed`` is False)."""

    def brushes(self) -> tuple[Brush, ...]:
        """The ranges brushed on the parallel coordinates' axes."""

    def set_brushes(self, brushes: tuple[Brush, ...]) -> None:
        """Filter the trials by these brushed ranges (the table and the views follow)."""
