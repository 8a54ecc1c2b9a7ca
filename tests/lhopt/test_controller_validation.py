"""Bad arguments to the controller get errors that name them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metatune.lhopt import Controller


def _optimizer() -> torch.optim.Optimizer:
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))], lr=1e-3)


@pytest.mark.parametrize("content", [b"root:x:0:0:root:/root:/bin/bash\n", b"", b"\x80\x04K."])
def test_a_file_that_is_not_a_policy_is_refused_by_name(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "passwd"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"passwd is not a metatune policy file"):
        Controller(_optimizer(), total_steps=100, policy=str(path))


def test_a_missing_policy_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no policy file"):
        Controller(_optimizer(), total_steps=100, policy=str(tmp_path / "nope.pt"))


@pytest.mark.parametrize("bad", [None, "0.5", torch.ones(3), True])
def test_step_names_a_bad_loss(bad: object) -> None:
    ctl = Controller(_optimizer(), total_steps=100)
    with pytest.raises(TypeError, match="loss must be a number or a one-element tensor"):
        ctl.step(loss=bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="val_loss must be a number"):
        ctl.step(loss=1.0, val_loss=bad if bad is not None else "x")  # type: ignore[arg-type]
    ctl.step(loss=torch.tensor(0.5))  # a one-element tensor is fine
