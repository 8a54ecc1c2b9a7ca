"""Tune a random forest on scikit-learn's wine data with metatune's GP optimizer.

Run: .venv/bin/python examples/quickstart.py  (about a minute; results in ./metatune-runs)
"""

from sklearn.datasets import load_wine
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import cross_val_score

import metatune as mt

X, y = load_wine(return_X_y=True)

space = mt.Space(
    {
        "n_estimators": mt.Int(10, 300, log=True),
        "max_depth": mt.Int(2, 16),
        "max_features": mt.Categorical(["sqrt", "log2", None]),
        "min_samples_leaf": mt.Int(1, 20, log=True),
    }
)


def objective(params: dict) -> float:
    model = RandomForestClassifier(random_state=0, n_jobs=1, **params)
    return cross_val_score(model, X, y, cv=5).mean()


if __name__ == "__main__":
    study = mt.Study(
        space,
        direction="maximize",
        storage="sqlite:///metatune-runs/examples.db",
        name="quickstart-wine-rf",
        seed=0,
    )
    study.optimize(objective, n_trials=25)
    print(f"best accuracy {study.best.value:.4f} with {study.best.params}")
