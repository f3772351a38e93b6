"""The declared options of a component: a strategy (``train.strategy_options``), a regulariser
(``objective.regulariser_options``) or a loss term (the keys of an ``objective.terms`` entry).

Each component declares its options as a dataclass subclass of :class:`Options`: the field types are the types
(checked by :func:`vaelab.configio.from_dict`, as for every config section), a field's rule (a
:class:`~vaelab.rules.Rule`, given with :func:`setting`) is its range, and :meth:`Options.validate` adds the rules
that relate two options. :meth:`Options.parse` reads a mapping into the class: a key the class does not declare, a
wrong type or a value out of range is a one-line :class:`~vaelab.errors.ConfigError` naming the full key, when the
config is loaded (:func:`vaelab.checks.validate_config` builds the components) as when the component is built from
Python::

    train.strategy_options.inner_stepz: unknown option 'inner_stepz' (an unexpected keyword for strategy
        'aggressive'); valid options: check_every_steps, clip_scope, ...
    train.strategy_options.window must be an integer >= 1, got 0
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from vaelab.configio import from_dict
from vaelab.errors import ConfigError
from vaelab.rules import Rule

O = TypeVar("O", bound="Options")


def setting(default: Any = None, rule: Rule | None = None) -> Any:
    """A field of an :class:`Options` class with its ``default`` and its ``rule`` (checked by
    :meth:`Options.validate`; with ``default`` None, None means unset and is not checked)."""
    return dataclasses.field(default=default, metadata={"rule": rule} if rule is not None else {})


@dataclass
class Options:
    """Base class of a component's declared options (no options: this class itself)."""

    @classmethod
    def names(cls) -> list[str]:
        """The declared options, sorted."""
        return sorted(f.name for f in dataclasses.fields(cls))

    @classmethod
    def check_keys(cls, options: Any, key: str, owner: str) -> dict[str, Any]:
        """``options`` as a dict, if it is a mapping whose every key is declared; else a one-line
        :class:`ConfigError` naming ``key.OPTION`` and the declared options. ``owner`` names the component
        (``strategy 'aggressive'``)."""
        if options is None:
            return {}
        if not isinstance(options, Mapping):
            raise ConfigError(f"{key} must be a mapping of the options of {owner}, got {options!r}")
        valid = cls.names()
        for name in options:
            if name not in valid:
                choices = ", ".join(valid) if valid else "none (it takes no options)"
                raise ConfigError(
                    f"{key}.{name}: unknown option {name!r} (an unexpected keyword for {owner}); valid options: "
                    f"{choices}"
                )
        return {str(k): v for k, v in options.items()}

    @classmethod
    def parse(cls: type[O], options: Any, key: str, owner: str) -> O:
        """The options read from the mapping ``options`` (keys, types, then :meth:`validate`); errors name
        ``key.OPTION``."""
        parsed = from_dict(cls, cls.check_keys(options, key, owner), key)
        parsed.validate(key)
        return parsed

    def validate(self, key: str) -> None:
        """Apply each field's rule (a field whose default is None may be None: unset); subclasses add the rules that
        relate two options (and call this first)."""
        for f in dataclasses.fields(self):
            rule, value = f.metadata.get("rule"), getattr(self, f.name)
            if rule is not None and not (value is None and f.default is None):
                rule.check(f"{key}.{f.name}", value)

    def as_kwargs(self) -> dict[str, Any]:
        """The options as keyword arguments (field name -> value)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


__all__ = ["Options", "setting"]
