"""The two pipelines shaped like the EEIPU paper's: the cheap last stages' knobs change the
objective, and their prefixes are what a reusing trial skips."""

from __future__ import annotations

import math

import pytest
import torch

from metatune.benchmarks.shaped_pipelines import distillation_pipeline, postprocess_pipeline


def _prediction(n: int = 64, k: int = 10) -> dict:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, k, (n,), generator=g)
    logits = torch.randn(n, k, generator=g) + 3.0 * torch.nn.functional.one_hot(y, k)
    views = logits[None] + 0.5 * torch.randn(4, n, k, generator=g)
    return {"logits": logits, "view_logits": views, "y": y}


def test_postprocessing_knobs_change_the_nll_as_their_definitions_say() -> None:
    stage = postprocess_pipeline(cache=False).stages[-1]
    prev = _prediction()
    plain = stage.fn(prev, temperature=1.0, tta_weight=0.0, smoothing=0.0)["objective"]
    expect = torch.nn.functional.cross_entropy(prev["logits"], prev["y"])
    assert plain == pytest.approx(float(expect), rel=1e-5)
    # each knob moves the objective; full smoothing is the uniform distribution's NLL
    for kw in ({"temperature": 2.0}, {"tta_weight": 1.0}, {"smoothing": 0.1}):
        args = {"temperature": 1.0, "tta_weight": 0.0, "smoothing": 0.0, **kw}
        assert stage.fn(prev, **args)["objective"] != pytest.approx(plain, rel=1e-4)
    uniform = stage.fn(prev, temperature=1.0, tta_weight=0.0, smoothing=1.0)["objective"]
    assert uniform == pytest.approx(math.log(10), rel=1e-6)


def test_shapes_put_the_cost_early_and_the_knobs_late() -> None:
    post = postprocess_pipeline(cache=False)
    assert post.stage_names == ["augment", "train", "postprocess"]
    assert len(post.stages[-1].params) >= 2
    distill = distillation_pipeline(cache=False)
    assert distill.stage_names[:3] == ["data", "teacher_pretrain", "teacher_finetune"]
    rounds = distill.stage_names[3:]
    assert len(rounds) == 3
    for name in rounds:  # each round its own learning rate, temperature and weight decay
        assert {k.split(".")[-1] for k in distill.space if k.startswith(name + ".")} == {
            "lr",
            "temperature",
            "weight_decay",
        }
