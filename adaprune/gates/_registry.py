"""The registry of adaptive methods: ``wrap(vit, method=NAME)`` looks them up here.

A method registers itself with ``@register_gate(NAME)`` when its module is imported. An
installed package can also declare its methods as entry points, so that ``wrap`` and
``list_gates`` find them without an import::

    [project.entry-points."adaprune.methods"]
    dynamicvit = "adaprune_baselines.dynamicvit"
"""

from __future__ import annotations

import importlib.metadata
import warnings
from typing import Callable, Optional, TypeVar

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


ENTRY_POINT_GROUP = "adaprune.methods"


def _load_entry_points(name: Optional[str] = None) -> None:
    """Imports the modules that installed packages declare under ``ENTRY_POINT_GROUP``
    (``name = "package.module"``), so that their ``@register_gate`` runs; only ``name``'s
    when given. adaprune itself imports no method package."""
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if (name is None or entry.name == name) and entry.name not in _GATES:
            try:
                entry.load()
            except Exception as error:  # a broken plugin must not hide the others
                warnings.warn(f"adaprune method {entry.name!r} ({entry.value}) failed to load: {error}",
                              stacklevel=3)


def list_gates() -> list[str]:
    """Names of the registered methods, sorted (installed plugins' methods included)."""
    _load_entry_points()
    return sorted(_GATES)


def get_gate(name: str) -> type:
    """The gate class registered as ``name``; a ValueError lists the known names otherwise."""
    if name not in _GATES:
        _load_entry_points(name)
    try:
        return _GATES[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; registered: {', '.join(list_gates()) or 'none'}") from None
