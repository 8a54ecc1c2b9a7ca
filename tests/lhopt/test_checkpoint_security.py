"""A planted or corrupt training checkpoint is refused with a clear error, and runs no code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from metatune.lhopt.training import MetaTrainConfig, meta_train


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _config() -> MetaTrainConfig:
    return MetaTrainConfig(
        iterations=1,
        episodes_per_iteration=2,
        min_steps=20,
        max_steps=20,
        min_policy_steps=2,
        max_policy_steps=2,
        ppo_epochs=1,
        hidden=16,
        steps_grid=10,
        families=["quadratic"],
    )


def test_a_planted_checkpoint_runs_no_code(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "metatune-runs" / "lhopt"
    out.mkdir(parents=True)
    torch.save({"config": {}, "policy": _Boom()}, out / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"cannot resume from .*checkpoint\.pt.*not a readable"):
        meta_train(out, _config())
    assert not (tmp_path / "PWNED").exists()


def test_a_corrupt_checkpoint_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "checkpoint.pt").write_bytes(b"truncated")
    with pytest.raises(ValueError, match="cannot resume from .*delete it to start over"):
        meta_train(tmp_path, _config())


def test_our_own_checkpoints_still_resume(tmp_path: Path) -> None:
    cfg = _config()
    meta_train(tmp_path, cfg)
    cfg.iterations = 2
    seen: list[int] = []
    meta_train(tmp_path, cfg, progress=lambda it, stats: seen.append(it))
    assert seen == [2]
