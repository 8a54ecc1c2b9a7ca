"""metatune: learning to learn. Search spaces, studies and model-based optimizers."""

from metatune.space import Categorical, Float, Int, Space
from metatune.study import Study, load_study
from metatune.trial import Trial, TrialState

__version__ = "0.1.0"

__all__ = [
    "Categorical",
    "Float",
    "Int",
    "Space",
    "Study",
    "Trial",
    "TrialState",
    "load_study",
    "__version__",
]
