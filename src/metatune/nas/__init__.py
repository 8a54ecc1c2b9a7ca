"""Neural architecture search: architecture spaces as parameters of a Space, and searchers.

The searchers (`nas-bo`, `regularized-evolution`, `local-search`) are optimizers of a Study,
looked up by name like `gp` or `random`; torch-based parts (networks, DARTS) are imported from
their modules so that a space alone does not import torch.
"""

from metatune.nas.cell import Cell, ChoiceCell
from metatune.nas.chain import Chain
from metatune.nas.operations import DARTS_OPS, NB201_OPS, OPERATIONS, Operation

__all__ = ["Cell", "Chain", "ChoiceCell", "DARTS_OPS", "NB201_OPS", "OPERATIONS", "Operation"]
