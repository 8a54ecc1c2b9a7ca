"""Pruners: stop unpromising trials early from the intermediate values they report.

Built-ins (by name): "none", "median", "percentile", "successive-halving" (ASHA) and
"hyperband"; `make_pruner(name, options)` builds one, `register_pruner` adds your own.
"""

from metatune.pruners.base import (
    DEFAULT_PRUNER,
    PRUNERS,
    NopPruner,
    Pruner,
    make_pruner,
    register_pruner,
)

__all__ = ["DEFAULT_PRUNER", "PRUNERS", "NopPruner", "Pruner", "make_pruner", "register_pruner"]
