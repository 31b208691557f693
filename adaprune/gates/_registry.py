"""The registry of adaptive methods: ``wrap(vit, method=NAME)`` looks them up here."""

from __future__ import annotations

import warnings
from typing import Callable, TypeVar

__all__ = ["register_gate", "list_gates", "get_gate"]

_GATES: dict[str, type] = {}

G = TypeVar("G", bound=type)


def register_gate(name: str) -> Callable[[G], G]:
    """Class decorator registering a ``BlockGate`` subclass as the method ``name``.

    Registering a name twice replaces the first with a warning (as timm's ``register_model``).
    """
    from adaprune.gates.base import BlockGate

    def decorate(cls: G) -> G:
        if not (isinstance(cls, type) and issubclass(cls, BlockGate)):
            raise TypeError(f"register_gate expects a subclass of adaprune.BlockGate, got {cls!r}")
        if name in _GATES and _GATES[name] is not cls:
            warnings.warn(f"gate {name!r} registered again: {cls.__qualname__} replaces "
                          f"{_GATES[name].__qualname__}", stacklevel=2)
        cls.name = name
        _GATES[name] = cls
        return cls

    return decorate


def list_gates() -> list[str]:
    """Names of the registered methods, sorted."""
    return sorted(_GATES)


def get_gate(name: str) -> type:
    """The gate class registered as ``name``; a ValueError lists the known names otherwise."""
    try:
        return _GATES[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; registered: {', '.join(list_gates()) or 'none'}") from None
