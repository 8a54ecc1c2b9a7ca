"""One registry type for every extension point (optimizers, hypergradient methods, linear
solvers, task families, benchmarks, ...).

A registry maps names to objects. Built-ins may be registered lazily as ``"module:attribute"``
so that a heavy import (BoTorch, torch) happens only when the entry is first used. Registering a
name twice is refused unless ``overwrite=True``: a silent overwrite would make ``get(name)``
depend on import order.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

__all__ = ["Registry", "UnknownNameError", "construct"]

T = TypeVar("T")
F = TypeVar("F")


class UnknownNameError(ValueError, KeyError):
    """A name that is not registered; the message lists the registered names.

    It is a ValueError (a bad argument value) and a KeyError (a missing mapping key) so that
    callers catching either keep working.
    """

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


def _same_object(a: Any, b: Any) -> bool:
    """True when `b` is `a`, or the same definition loaded again (a module re-imported)."""
    if a is b:
        return True
    key = lambda o: (getattr(o, "__module__", None), getattr(o, "__qualname__", None))  # noqa: E731
    return key(a)[1] is not None and key(a) == key(b)


class Registry(Generic[T]):
    """Names -> objects of one kind.

    Args:
        kind: what the entries are, for error messages ("optimizer", "linear solver").
        check: called on every object registered (eagerly, or when a lazy entry is first
            resolved); raises TypeError for an object of the wrong kind.
        on_register: called with (name, obj) once an object is in the registry, e.g. to stamp
            the name on a class.
    """

    def __init__(
        self,
        kind: str,
        check: Callable[[Any], None] | None = None,
        on_register: Callable[[str, T], None] | None = None,
    ) -> None:
        self.kind = kind
        self._check = check
        self._on_register = on_register
        self._entries: dict[str, T | str] = {}

    # -- registering -----------------------------------------------------------------------------
    @overload
    def register(
        self, name: str, obj: None = None, *, overwrite: bool = False
    ) -> Callable[[F], F]: ...

    @overload
    def register(self, name: str, obj: F, *, overwrite: bool = False) -> F: ...

    def register(self, name: str, obj: Any = None, *, overwrite: bool = False) -> Any:
        """Register `obj` under `name`; without `obj`, return a decorator that does."""
        self._check_name(name)

        def deco(o: F) -> F:
            if self._check is not None:
                self._check(o)
            self._refuse_overwrite(name, o, overwrite)
            self._entries[name] = o  # type: ignore[assignment]
            if self._on_register is not None:
                self._on_register(name, o)  # type: ignore[arg-type]
            return o

        return deco if obj is None else deco(obj)

    def register_lazy(self, name: str, target: str, *, overwrite: bool = False) -> None:
        """Register ``"package.module:attribute"``, imported when `name` is first looked up."""
        self._check_name(name)
        module, sep, attr = target.partition(":")
        if not (module and sep and attr):
            raise ValueError(f"a lazy {self.kind} must be 'module:attribute', got {target!r}")
        if name in self._entries and not overwrite and self._entries[name] != target:
            raise ValueError(
                f"{self.kind} {name!r} is already registered; pass overwrite=True to replace it"
            )
        self._entries[name] = target

    def unregister(self, name: str) -> None:
        """Remove `name` (for tests and plugins that clean up after themselves)."""
        if name not in self._entries:
            raise self._unknown(name)
        del self._entries[name]

    # -- looking up ------------------------------------------------------------------------------
    def get(self, name: str) -> T:
        """The object registered as `name`; an unknown name's error lists the known ones."""
        if not isinstance(name, str) or name not in self._entries:
            raise self._unknown(name)
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            obj = getattr(importlib.import_module(module), attr)
            # Importing the module may have registered the object itself (a decorator).
            if self._check is not None:
                self._check(obj)
            self._entries[name] = obj
            if self._on_register is not None:
                self._on_register(name, obj)
            entry = obj
        return entry  # type: ignore[return-value]

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        return sorted(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """(name, object) pairs, sorted by name; resolves lazy entries."""
        return [(n, self.get(n)) for n in self.names()]

    def __getitem__(self, name: str) -> T:
        """``registry[name]``, the same as `get` (so a registry reads like the dict it is)."""
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"

    # -- helpers ---------------------------------------------------------------------------------
    def _check_name(self, name: Any) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")

    def _refuse_overwrite(self, name: str, obj: Any, overwrite: bool) -> None:
        if overwrite or name not in self._entries:
            return
        current = self._entries[name]
        if isinstance(current, str):
            module, _, attr = current.partition(":")
            if (
                getattr(obj, "__module__", None) == module
                and getattr(obj, "__name__", None) == attr
            ):
                return  # the lazy entry's own module is registering its object
        elif _same_object(current, obj):
            return
        raise ValueError(
            f"{self.kind} {name!r} is already registered ({current!r}); "
            "pass overwrite=True to replace it"
        )

    def _unknown(self, name: Any) -> UnknownNameError:
        known = ", ".join(self.names()) or "none"
        return UnknownNameError(f"unknown {self.kind} {name!r}; available: {known}")


def construct(cls: type, options: dict[str, Any], what: str) -> Any:
    """`cls(**options)` for a registered class, refusing options its constructor does not take
    with an error naming `what` ("optimizer 'gp'") and the allowed options."""
    if cls.__init__ is object.__init__:  # a class without options of its own
        if options:
            raise ValueError(f"unknown option(s) {sorted(options)} for {what}; it takes no options")
        return cls()
    accepted = inspect.signature(cls.__init__).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
        bad = sorted(set(options) - set(accepted) - {"self"})
        if bad:
            allowed = sorted(set(accepted) - {"self"})
            raise ValueError(f"unknown option(s) {bad} for {what}; allowed: {allowed}")
    return cls(**options)
