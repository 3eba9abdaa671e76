"""The interface every environment collector implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar


class Collector(ABC):
    """Captures one category of facts about the environment a trial runs in.

    A collector only gathers data: it returns plain JSON-serializable values
    and never stores anything.

    Attributes
    ----------
    category : str
        Name of the category, the key of the collected data in the environment.
    labels : dict of str to str
        Human-readable label of each collected key, used when rendering lines.
    """

    category: ClassVar[str]
    labels: ClassVar[dict[str, str]] = {}

    @abstractmethod
    def collect(self) -> dict[str, Any]:
        """Gather the facts of this category.

        Returns
        -------
        dict of str to Any
            JSON-serializable facts; an empty mapping when there is nothing to report.
        """

    def available(self) -> bool:
        """Whether this collector can run in this process.

        Returns
        -------
        bool
            ``True`` unless overridden.
        """
        return True
