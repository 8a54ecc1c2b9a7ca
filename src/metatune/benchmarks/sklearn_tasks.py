"""Hyperparameter-tuning problems on scikit-learn's bundled datasets (no download needed).

`SVMDigits` is the problem behind `metatune demo`: an SVM on the 8x8 digits with k-fold
cross-validation. Most of its space scores near chance (gamma too large, C too small), so a
model-based optimizer that learns where the good region lies beats random search.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from metatune.space import Categorical, Float, Space

__all__ = ["SVMDigits"]


class SVMDigits:
    """Maximize the k-fold CV accuracy of `sklearn.svm.SVC` on the digits dataset.

    Params: `C` and `gamma` on log scales, `kernel` among rbf, poly and sigmoid.
    `cv` is the number of folds; `max_samples` keeps a stratified subsample (for fast tests).
    Calling the task returns ``{"objective": mean accuracy, "accuracy_std": ..., ...}``.
    """

    direction = "maximize"

    def __init__(self, cv: int = 5, max_samples: int | None = None, seed: int = 0) -> None:
        if isinstance(cv, bool) or not isinstance(cv, int) or cv < 2:
            raise ValueError(f"cv must be an integer >= 2, got {cv!r}")
        if max_samples is not None and (
            isinstance(max_samples, bool)
            or not isinstance(max_samples, int)
            or max_samples < 10 * cv
        ):
            raise ValueError(
                f"max_samples must be an integer >= 10 * cv ({10 * cv}) or None, got {max_samples!r}"
            )
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        if max_samples is not None and max_samples < len(y):
            from sklearn.model_selection import train_test_split

            X, _, y, _ = train_test_split(
                X, y, train_size=max_samples, stratify=y, random_state=seed
            )
        self.X = X / 16.0  # pixel intensities 0..16 -> [0, 1]
        self.y = y
        self.cv = cv
        self.seed = seed

    @property
    def space(self) -> Space:
        return Space(
            {
                "C": Float(1e-2, 1e4, log=True),
                "gamma": Float(1e-5, 1e1, log=True),
                "kernel": Categorical(["rbf", "poly", "sigmoid"]),
            }
        )

    def __call__(self, params: dict[str, Any]) -> dict[str, float]:
        from sklearn.model_selection import StratifiedKFold, cross_val_score
        from sklearn.svm import SVC

        model = SVC(C=params["C"], gamma=params["gamma"], kernel=params["kernel"])
        folds = StratifiedKFold(self.cv, shuffle=True, random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = cross_val_score(model, self.X, self.y, cv=folds)
        return {
            "objective": float(np.mean(scores)),
            "accuracy_std": float(np.std(scores)),
        }
