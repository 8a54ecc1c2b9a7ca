"""The random state of one suggestion, a function of (study seed, trial number) only.

So a suggestion does not depend on which process makes it or in which order workers ask.
"""

from __future__ import annotations

import numpy as np
import torch

from metatune.optimizers.base import SuggestContext

__all__ = ["suggestion_seeds"]


def suggestion_seeds(context: SuggestContext) -> tuple[int, np.random.Generator]:
    """The torch seed and numpy generator of suggestion `context.trial_number`."""
    gen = torch.Generator().manual_seed((context.seed * 1_000_003 + context.trial_number) % 2**63)
    torch_seed = int(torch.randint(0, 2**31, (1,), generator=gen))
    return torch_seed, np.random.default_rng([context.seed, context.trial_number])
