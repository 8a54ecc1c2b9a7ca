"""Pruners: stop unpromising trials early from the intermediate values they report."""

from metatune.pruners.base import PRUNERS, NopPruner, Pruner, make_pruner, register_pruner

__all__ = ["PRUNERS", "NopPruner", "Pruner", "make_pruner", "register_pruner"]
