"""A small name -> factory registry, used for models, data sets, schedules, regularisers and strategies.

Unknown names raise a :class:`KeyError` subclass whose message lists the valid choices, so that a typo in a
config file is answered with what the user could have written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownChoiceError(KeyError):
    """A name that is not registered; the message lists the valid choices."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want a readable sentence.
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps names to factories of one kind (``kind`` is used in error messages)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str, key: str | None = None) -> T:
        """The factory registered as ``name``; ``key`` (a config path) is named in the error."""
        try:
            return self._items[name]
        except KeyError:
            where = f" (config key {key!r})" if key else ""
            raise UnknownChoiceError(
                f"unknown {self.kind} {name!r}{where}; valid choices: {', '.join(sorted(self._items))}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))
