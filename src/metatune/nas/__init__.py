"""Neural architecture search: architecture spaces as parameters of a Space, and searchers."""

from metatune.nas.cell import Cell, ChoiceCell
from metatune.nas.operations import DARTS_OPS, NB201_OPS, OPERATIONS, Operation

__all__ = ["Cell", "ChoiceCell", "DARTS_OPS", "NB201_OPS", "OPERATIONS", "Operation"]
