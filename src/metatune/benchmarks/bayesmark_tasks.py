"""Bayesmark-style tuning problems: a scikit-learn model x a bundled dataset x a metric.

Bayesmark (the NeurIPS 2020 black-box optimization challenge's suite) no longer imports on
current numpy / scikit-learn, so its problem set is re-created here: each problem is the 5-fold
cross-validated loss of one model on one dataset bundled with scikit-learn (nothing downloads),
minimized. Features are standardized once (and so is a regression target), as Bayesmark did,
and the folds are fixed, so a problem is a deterministic function of its parameters.

`PROBLEMS` lists every registered problem by name (``"DT-digits-nll"``); `make_problem` builds
one, `problem_names` lists them. Models and their spaces are in `MODELS`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from metatune._registry import Registry
from metatune.space import Categorical, Float, Int, Param, Space

__all__ = [
    "DATASETS",
    "DEFAULT_PROBLEMS",
    "OTHER_PROBLEMS",
    "METRICS",
    "MODELS",
    "PROBLEMS",
    "BayesmarkProblem",
    "ModelSpec",
    "make_problem",
    "problem_names",
]

Task = Literal["classification", "regression"]

# dataset -> (task, scikit-learn loader name)
DATASETS: dict[str, tuple[Task, str]] = {
    "iris": ("classification", "load_iris"),
    "wine": ("classification", "load_wine"),
    "breast_cancer": ("classification", "load_breast_cancer"),
    "digits": ("classification", "load_digits"),
    "diabetes": ("regression", "load_diabetes"),
}
# metric -> (task, scikit-learn scorer, sign that turns the scorer into a loss, offset)
# accuracy becomes 1 - accuracy; the others are scikit-learn's negated losses.
METRICS: dict[str, tuple[Task, str, float, float]] = {
    "nll": ("classification", "neg_log_loss", -1.0, 0.0),
    "acc": ("classification", "accuracy", -1.0, 1.0),
    "mse": ("regression", "neg_mean_squared_error", -1.0, 0.0),
    "mae": ("regression", "neg_mean_absolute_error", -1.0, 0.0),
}


@dataclass(frozen=True)
class ModelSpec:
    """A model family: its estimators per task (params -> estimator) and its search space.

    Args:
        space: parameter name -> metatune parameter; the same space for both tasks.
        classifier / regressor: build the estimator from a point of the space, or None where
            the family has no such estimator.
        probabilities: whether the classifier predicts probabilities (needed for ``nll``).
    """

    space: Mapping[str, Param]
    classifier: Callable[[dict[str, Any]], Any] | None
    regressor: Callable[[dict[str, Any]], Any] | None
    probabilities: bool = True


def _tree_params(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "max_depth": int(p["max_depth"]),
        "min_samples_split": float(p["min_samples_split"]),
        "min_samples_leaf": float(p["min_samples_leaf"]),
        "min_weight_fraction_leaf": float(p["min_weight_fraction_leaf"]),
        "max_features": float(p["max_features"]),
        "min_impurity_decrease": float(p["min_impurity_decrease"]),
        "random_state": 0,
    }


# Bayesmark's tree space (its logit-scaled fractions searched on a linear scale here).
_TREE_SPACE: dict[str, Param] = {
    "max_depth": Int(1, 15),
    "min_samples_split": Float(0.01, 0.99),
    "min_samples_leaf": Float(0.01, 0.49),
    "min_weight_fraction_leaf": Float(0.01, 0.49),
    "max_features": Float(0.01, 0.99),
    "min_impurity_decrease": Float(0.0, 0.5),
}


def _dt_clf(p: dict[str, Any]) -> Any:
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(**_tree_params(p))


def _dt_reg(p: dict[str, Any]) -> Any:
    from sklearn.tree import DecisionTreeRegressor

    return DecisionTreeRegressor(**_tree_params(p))


def _rf_clf(p: dict[str, Any]) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=10, n_jobs=1, **_tree_params(p))


def _rf_reg(p: dict[str, Any]) -> Any:
    from sklearn.ensemble import RandomForestRegressor

    return RandomForestRegressor(n_estimators=10, n_jobs=1, **_tree_params(p))


def _knn_params(p: dict[str, Any]) -> dict[str, Any]:
    return {"n_neighbors": int(p["n_neighbors"]), "p": int(p["p"]), "weights": str(p["weights"])}


def _knn_clf(p: dict[str, Any]) -> Any:
    from sklearn.neighbors import KNeighborsClassifier

    return KNeighborsClassifier(**_knn_params(p))


def _knn_reg(p: dict[str, Any]) -> Any:
    from sklearn.neighbors import KNeighborsRegressor

    return KNeighborsRegressor(**_knn_params(p))


def _svm_clf(p: dict[str, Any]) -> Any:
    from sklearn.svm import SVC

    return SVC(C=float(p["C"]), gamma=float(p["gamma"]), tol=float(p["tol"]))


def _svm_reg(p: dict[str, Any]) -> Any:
    from sklearn.svm import SVR

    return SVR(C=float(p["C"]), gamma=float(p["gamma"]), tol=float(p["tol"]))


def _ada_clf(p: dict[str, Any]) -> Any:
    from sklearn.ensemble import AdaBoostClassifier

    return AdaBoostClassifier(
        n_estimators=int(p["n_estimators"]), learning_rate=float(p["learning_rate"]), random_state=0
    )


def _ada_reg(p: dict[str, Any]) -> Any:
    from sklearn.ensemble import AdaBoostRegressor

    return AdaBoostRegressor(
        n_estimators=int(p["n_estimators"]), learning_rate=float(p["learning_rate"]), random_state=0
    )


def _linear_clf(p: dict[str, Any]) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(
        C=float(p["C"]),
        intercept_scaling=float(p["intercept_scaling"]),
        tol=float(p["tol"]),
        solver=str(p["solver"]),
        max_iter=100,
    )


def _lasso_reg(p: dict[str, Any]) -> Any:
    from sklearn.linear_model import Lasso

    return Lasso(
        alpha=float(p["alpha"]),
        tol=float(p["tol"]),
        max_iter=int(p["max_iter"]),
        selection=str(p["selection"]),
        random_state=0,
    )


def _mlp_params(p: dict[str, Any]) -> dict[str, Any]:
    return {
        "hidden_layer_sizes": (int(p["hidden_layer_sizes"]),),
        "alpha": float(p["alpha"]),
        "batch_size": int(p["batch_size"]),
        "learning_rate_init": float(p["learning_rate_init"]),
        "tol": float(p["tol"]),
        "beta_1": float(p["beta_1"]),
        "beta_2": float(p["beta_2"]),
        "max_iter": 40,  # capped: a cheap problem, at the price of unconverged fits
        "random_state": 0,
    }


def _mlp_clf(p: dict[str, Any]) -> Any:
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(**_mlp_params(p))


def _mlp_reg(p: dict[str, Any]) -> Any:
    from sklearn.neural_network import MLPRegressor

    return MLPRegressor(**_mlp_params(p))


MODELS: dict[str, ModelSpec] = {
    "DT": ModelSpec(_TREE_SPACE, _dt_clf, _dt_reg),
    "RF": ModelSpec(_TREE_SPACE, _rf_clf, _rf_reg),
    "kNN": ModelSpec(
        {
            "n_neighbors": Int(1, 25),
            "p": Int(1, 4),
            "weights": Categorical(["uniform", "distance"]),
        },
        _knn_clf,
        _knn_reg,
    ),
    # SVC without Platt scaling (5x the cost), so its classification metric is accuracy only.
    "SVM": ModelSpec(
        {
            "C": Float(1e-2, 1e3, log=True),
            "gamma": Float(1e-4, 1e0, log=True),
            "tol": Float(1e-5, 1e-1, log=True),
        },
        _svm_clf,
        _svm_reg,
        probabilities=False,
    ),
    "ada": ModelSpec(
        {"n_estimators": Int(10, 100), "learning_rate": Float(1e-4, 1e1, log=True)},
        _ada_clf,
        _ada_reg,
    ),
    "linear": ModelSpec(
        {
            "C": Float(1e-2, 1e2, log=True),
            "intercept_scaling": Float(1e-2, 1e2, log=True),
            "tol": Float(1e-5, 1e-1, log=True),
            "solver": Categorical(["liblinear", "lbfgs"]),
        },
        _linear_clf,
        None,
    ),
    "lasso": ModelSpec(
        {
            "alpha": Float(1e-3, 1e1, log=True),
            "tol": Float(1e-5, 1e-1, log=True),
            "max_iter": Int(10, 5000, log=True),
            "selection": Categorical(["cyclic", "random"]),
        },
        None,
        _lasso_reg,
    ),
    "MLP": ModelSpec(
        {
            "hidden_layer_sizes": Int(16, 128),
            "alpha": Float(1e-5, 1e1, log=True),
            "batch_size": Int(16, 128),
            "learning_rate_init": Float(1e-5, 1e-1, log=True),
            "tol": Float(1e-5, 1e-1, log=True),
            "beta_1": Float(0.5, 0.99),
            "beta_2": Float(0.9, 0.9999),
        },
        _mlp_clf,
        _mlp_reg,
    ),
}


def _standardize(a: np.ndarray) -> np.ndarray:
    scale = a.std(axis=0)
    return (a - a.mean(axis=0)) / np.where(scale > 0, scale, 1.0)


class BayesmarkProblem:
    """The 5-fold CV loss of `model` on `dataset` under `metric`, to minimize.

    Args:
        model / dataset / metric: keys of `MODELS`, `DATASETS` and `METRICS`; the metric must
            fit the dataset's task and the model must have an estimator for that task.
        cv: number of folds (fixed, shuffled with seed 0, stratified for classification).
        max_samples: keep a seeded subsample of this many rows (for fast tests), or None.

    Calling the problem with a point of `space` returns the loss (a float, lower is better);
    a fit that fails or gives a non-finite loss returns the problem's `failure_loss`.
    """

    def __init__(
        self, model: str, dataset: str, metric: str, cv: int = 5, max_samples: int | None = None
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, got {model!r}")
        if dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {sorted(DATASETS)}, got {dataset!r}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {sorted(METRICS)}, got {metric!r}")
        task, loader = DATASETS[dataset]
        if METRICS[metric][0] != task:
            allowed = sorted(m for m, v in METRICS.items() if v[0] == task)
            raise ValueError(f"metric {metric!r} does not fit {task} on {dataset}; use {allowed}")
        spec = MODELS[model]
        if (spec.classifier if task == "classification" else spec.regressor) is None:
            raise ValueError(f"model {model!r} has no {task} estimator (dataset {dataset!r})")
        if metric == "nll" and not spec.probabilities:
            raise ValueError(f"model {model!r} predicts no probabilities, so metric 'nll' is out")
        if isinstance(cv, bool) or not isinstance(cv, int) or cv < 2:
            raise ValueError(f"cv must be an integer >= 2, got {cv!r}")
        if max_samples is not None and (
            isinstance(max_samples, bool)
            or not isinstance(max_samples, int)
            or max_samples < 10 * cv
        ):
            raise ValueError(
                f"max_samples must be an integer >= {10 * cv} or None, got {max_samples!r}"
            )
        self.model, self.dataset, self.metric, self.task, self.cv = model, dataset, metric, task, cv
        self.name = f"{model}-{dataset}-{metric}"
        import sklearn.datasets

        X, y = getattr(sklearn.datasets, loader)(return_X_y=True)
        if max_samples is not None and max_samples < len(y):
            rows = np.random.default_rng(0).permutation(len(y))[:max_samples]
            X, y = X[rows], y[rows]
        self.X = _standardize(np.asarray(X, dtype=float))
        self.y = _standardize(np.asarray(y, dtype=float)) if task == "regression" else y
        # A loss worse than any real fit's, for fits that fail (as Bayesmark scored a crash).
        self.failure_loss = {"nll": 40.0, "acc": 1.0, "mse": 10.0, "mae": 10.0}[metric]

    @property
    def space(self) -> Space:
        return Space(dict(MODELS[self.model].space))

    def estimator(self, params: dict[str, Any]) -> Any:
        spec = MODELS[self.model]
        build = spec.classifier if self.task == "classification" else spec.regressor
        assert build is not None  # checked in __init__
        return build(params)

    def __call__(self, params: dict[str, Any]) -> float:
        from sklearn.model_selection import KFold, StratifiedKFold, cross_val_score

        _, scorer, sign, offset = METRICS[self.metric]
        folds_type = StratifiedKFold if self.task == "classification" else KFold
        folds = folds_type(self.cv, shuffle=True, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                scores = cross_val_score(
                    self.estimator(params),
                    self.X,
                    self.y,
                    cv=folds,
                    scoring=scorer,
                    error_score="raise",
                )
            except (ValueError, FloatingPointError, ArithmeticError):
                return self.failure_loss
        loss = offset + sign * float(np.mean(scores))
        return loss if np.isfinite(loss) else self.failure_loss


def _check_problem(obj: Any) -> None:
    if not (isinstance(obj, tuple) and len(obj) == 3 and all(isinstance(s, str) for s in obj)):
        raise TypeError(f"a Bayesmark problem is a (model, dataset, metric) tuple, got {obj!r}")


PROBLEMS: Registry[tuple[str, str, str]] = Registry("Bayesmark problem", check=_check_problem)
# The default set: a 5-fold CV costs tens of milliseconds on one thread, and random search's
# median best after 40 evaluations is measurably worse than the best found (the benchmark page
# says how they were chosen). The others are registered for --problems: on the first four of
# them random search's median came within 0.25% of the best loss any method found in 40
# evaluations, so they barely tell methods apart at that budget; the last two cost more.
DEFAULT_PROBLEMS = ("DT-digits-nll", "RF-diabetes-mae", "DT-wine-nll", "DT-diabetes-mse")
OTHER_PROBLEMS = (
    "linear-breast_cancer-nll",
    "kNN-diabetes-mse",
    "SVM-diabetes-mse",
    "lasso-diabetes-mae",
    "MLP-wine-nll",
    "RF-wine-nll",
)
for _name in (*DEFAULT_PROBLEMS, *OTHER_PROBLEMS):
    _m, _d, _metric = _name.split("-")
    PROBLEMS.register(_name, (_m, _d, _metric))
del _name, _m, _d, _metric


def problem_names() -> list[str]:
    """The registered problems' names."""
    return PROBLEMS.names()


def make_problem(name: str, **kwargs: Any) -> BayesmarkProblem:
    """The registered problem `name` (kwargs: cv, max_samples); an unknown name is refused with
    the registered names."""
    model, dataset, metric = PROBLEMS.get(name)
    return BayesmarkProblem(model, dataset, metric, **kwargs)
