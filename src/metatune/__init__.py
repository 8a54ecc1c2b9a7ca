"""metatune: learning to learn. Search spaces, studies, model-based optimizers and pipelines."""

from metatune.exceptions import TrialPruned
from metatune.pipeline import Pipeline, Stage
from metatune.reporting import report as report_intermediate
from metatune.reporting import should_prune
from metatune.space import Categorical, Float, Int, Space
from metatune.study import Study, load_study
from metatune.trial import Trial, TrialState

__version__ = "0.1.0"

__all__ = [
    "Categorical",
    "Float",
    "Int",
    "Pipeline",
    "Space",
    "Stage",
    "Study",
    "Trial",
    "TrialPruned",
    "TrialState",
    "load_study",
    "report_intermediate",
    "should_prune",
    "__version__",
]
