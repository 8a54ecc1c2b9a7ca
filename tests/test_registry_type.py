"""The one Registry type behind every extension point."""

from __future__ import annotations

import pytest

from metatune._registry import Registry, UnknownNameError
from metatune.optimizers import OPTIMIZERS, Optimizer, register_optimizer


def test_register_get_list_and_refuse_a_silent_overwrite() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("a", 1)

    @reg.register("b")
    def b() -> None: ...

    assert reg.get("a") == 1 and reg.get("b") is b
    assert reg.names() == ["a", "b"] and "a" in reg and len(reg) == 2
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.register("a", 2)
    reg.register("a", 2, overwrite=True)
    assert reg.get("a") == 2
    reg.register("b", b)  # the same object again is not an overwrite
    with pytest.raises(ValueError, match="non-empty string"):
        reg.register("", 3)


def test_unknown_names_list_the_known_ones() -> None:
    reg: Registry[int] = Registry("widget")
    reg.register("x", 1)
    with pytest.raises(UnknownNameError, match=r"unknown widget 'y'; available: x") as err:
        reg.get("y")
    assert isinstance(err.value, ValueError) and isinstance(err.value, KeyError)
    assert str(err.value) == "unknown widget 'y'; available: x"
    with pytest.raises(UnknownNameError):
        reg.unregister("y")


def test_lazy_entries_import_on_first_use_and_are_checked() -> None:
    def only_ints(obj: object) -> None:
        if not isinstance(obj, int):
            raise TypeError(f"{obj!r} is not an int")

    reg: Registry[object] = Registry("thing", check=only_ints)
    reg.register_lazy("pi", "math:pi")
    with pytest.raises(TypeError, match="not an int"):
        reg.get("pi")
    free: Registry[object] = Registry("thing")
    free.register_lazy("sqrt", "math:sqrt")
    import math

    assert free.get("sqrt") is math.sqrt
    with pytest.raises(ValueError, match="module:attribute"):
        free.register_lazy("bad", "math.sqrt")


def test_optimizers_are_one_registry_with_lazy_builtins() -> None:
    assert {"gp", "random", "eeipu", "ms-bo"} <= set(OPTIMIZERS.names())

    @register_optimizer("registry-test-opt")
    class Mine(Optimizer):
        def suggest(self, history, pending, context):
            return context.space.sample(0)

    try:
        assert OPTIMIZERS.get("registry-test-opt") is Mine and Mine.name == "registry-test-opt"
        with pytest.raises(ValueError, match="already registered"):

            @register_optimizer("registry-test-opt")
            class Other(Optimizer):
                def suggest(self, history, pending, context):
                    return {}

        with pytest.raises(TypeError, match="must subclass"):
            register_optimizer("not-an-optimizer")(int)
    finally:
        OPTIMIZERS.unregister("registry-test-opt")
