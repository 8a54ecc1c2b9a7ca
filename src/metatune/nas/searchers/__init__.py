"""Architecture searchers, registered as optimizers of a Study (any space, cells or not)."""

from metatune.nas.searchers.evolution import RegularizedEvolution
from metatune.nas.searchers.local_search import LocalSearch
from metatune.nas.searchers.nas_bo import NASBO

__all__ = ["LocalSearch", "NASBO", "RegularizedEvolution"]
