"""Two real pipelines shaped like the EEIPU paper's: a costly early part, then cheap stages whose
hyperparameters matter (all offline, CPU).

* `distillation_pipeline` (language with distillation): "data" (tokenization, context length),
  "teacher_pretrain" (a character-level GRU on one set of standard-library modules: the bulk of
  a fresh run), "teacher_finetune" (on another set), then three checkpointed distillation
  stages, each training a smaller student GRU from the teacher's softened predictions with its
  own learning rate, temperature and weight decay. Objective: the student's validation loss
  per character.
* `postprocess_pipeline` (vision with post-processing): "augment" (shifted, noised copies of
  digits), "train" (a small CNN: the bulk), then "postprocess", which only reweighs the trained
  network's validation predictions: a softmax temperature (calibration), the weight of
  test-time-augmented views, and a smoothing towards the uniform distribution. Objective:
  validation negative log-likelihood.

A trial that reuses the cached expensive prefix pays only for the cheap stages, which is where
memoization buys several candidates for the price of one fresh run. Stage functions are
module-level so the cache can hash their source.
"""

from __future__ import annotations

from typing import Any

from metatune.benchmarks.pipeline_data import (
    augment_params,
    augmented_digits,
    fit_char_lm,
    fit_classifier,
    lm_windows,
    shift_images,
    small_cnn,
    stdlib_text,
)
from metatune.pipeline import Pipeline, Stage
from metatune.space import Float, Int

__all__ = ["distillation_pipeline", "postprocess_pipeline"]

# --- language with distillation -----------------------------------------------------------------
_TEACHER_MODULES = ("argparse.py", "collections/__init__.py", "dataclasses.py", "enum.py")
_TARGET_MODULES = ("json/decoder.py", "json/encoder.py", "json/__init__.py")
_TEACHER_STEPS = 160
_FINETUNE_STEPS = 30
_DISTILL_STEPS = 24
_BATCH = 32


def _gru(vocab: int, hidden: int, seed: int) -> Any:
    import torch

    class CharGRU(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = torch.nn.Embedding(vocab, 32)
            self.gru = torch.nn.GRU(32, hidden, batch_first=True)
            self.out = torch.nn.Linear(hidden, vocab)

        def forward(self, x: Any) -> Any:
            return self.out(self.gru(self.emb(x))[0])

    torch.manual_seed(seed)
    return CharGRU()


def _teacher(vocab: int) -> Any:
    return _gru(vocab, 96, seed=0)


def _student(vocab: int) -> Any:
    return _gru(vocab, 40, seed=1)


def _distill_data(*, context: int) -> dict:
    """Both corpora encoded over one character table; the validation part of the target corpus
    is fixed, whatever the context."""
    import torch

    teacher = stdlib_text(_TEACHER_MODULES, 150_000)
    target = stdlib_text(_TARGET_MODULES, 40_000)
    table = {c: i for i, c in enumerate(sorted(set(teacher + target)))}

    def encode(s: str) -> Any:
        return torch.tensor([table[c] for c in s], dtype=torch.long)

    cut = int(len(target) * 0.7)
    return {
        "context": context,
        "vocab": len(table),
        "teacher_corpus": encode(teacher),
        "target": encode(target[:cut]),
        "val": encode(target[cut:]),
    }


def _teacher_pretrain(data: dict, *, lr: float, weight_decay: float) -> dict:
    model = _teacher(data["vocab"])
    corpus, ctx = data["teacher_corpus"], data["context"]
    state = fit_char_lm(model, corpus, ctx, lr, weight_decay, _TEACHER_STEPS, seed=_TEACHER_STEPS)
    return {"data": data, "teacher": state}


def _teacher_finetune(prev: dict, *, lr: float, weight_decay: float) -> dict:
    data = prev["data"]
    model = _teacher(data["vocab"])
    model.load_state_dict(prev["teacher"])
    ctx = data["context"]
    state = fit_char_lm(
        model, data["target"], ctx, lr, weight_decay, _FINETUNE_STEPS, seed=_FINETUNE_STEPS
    )
    return {"data": data, "teacher": state, "student": None, "round": 0}


def _distill(prev: dict, lr: float, temperature: float, weight_decay: float) -> dict:
    """One round of distillation: the student learns from the teacher's predictions softened
    by `temperature` (scaled by T^2, as in Hinton et al.) and from the true next characters."""
    import torch
    from torch.nn import functional as F

    data = prev["data"]
    teacher = _teacher(data["vocab"])
    teacher.load_state_dict(prev["teacher"])
    teacher.eval()
    student = _student(data["vocab"])
    if prev["student"] is not None:
        student.load_state_dict(prev["student"])
    opt = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=weight_decay)
    t = float(temperature)
    rnd = prev["round"] + 1
    windows = lm_windows(data["target"], data["context"], _BATCH, _DISTILL_STEPS, seed=100 + rnd)
    for x, y in windows:
        with torch.no_grad():
            soft = F.log_softmax(teacher(x) / t, -1).flatten(0, 1)
        logits = student(x).flatten(0, 1)
        kd = F.kl_div(F.log_softmax(logits / t, -1), soft, log_target=True, reduction="batchmean")
        loss = 0.5 * t * t * kd + 0.5 * F.cross_entropy(logits, y.flatten())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
        opt.step()
    state = {k: v.detach().clone() for k, v in student.state_dict().items()}
    return {"data": data, "teacher": prev["teacher"], "student": state, "round": rnd}


def _distill_1(prev: dict, *, lr: float, temperature: float, weight_decay: float) -> dict:
    return _distill(prev, lr, temperature, weight_decay)


def _distill_2(prev: dict, *, lr: float, temperature: float, weight_decay: float) -> dict:
    return _distill(prev, lr, temperature, weight_decay)


def _distill_3(prev: dict, *, lr: float, temperature: float, weight_decay: float) -> dict:
    """The last round, then the student's validation loss per character (the objective) and
    the teacher's, for reference."""
    import torch

    out = _distill(prev, lr, temperature, weight_decay)
    data = out["data"]
    val, ctx = data["val"], 128
    n = (len(val) - 1) // ctx
    x, y = val[: n * ctx].view(n, ctx), val[1 : n * ctx + 1].view(n, ctx)
    scores = {}
    for role, make in (("student", _student), ("teacher", _teacher)):
        model = make(data["vocab"])
        model.load_state_dict(out[role])
        with torch.no_grad():
            scores[role] = float(
                torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
            )
    return {"objective": scores["student"], "teacher_loss": scores["teacher"]}


def _distill_params() -> dict[str, Float]:
    return {
        "lr": Float(1e-4, 3e-2, log=True),
        "temperature": Float(0.5, 8.0, log=True),
        "weight_decay": Float(1e-6, 1e-1, log=True),
    }


def _phase(lr_low: float, lr_high: float) -> dict[str, Float]:
    return {
        "lr": Float(lr_low, lr_high, log=True),
        "weight_decay": Float(1e-6, 1e-1, log=True),
    }


def distillation_pipeline(cache: Any = None) -> Pipeline:
    """Language with distillation: data, teacher pre-training (the bulk), teacher fine-tuning,
    three checkpointed distillation rounds."""
    return Pipeline(
        [
            Stage("data", _distill_data, params={"context": Int(24, 64, log=True)}),
            Stage("teacher_pretrain", _teacher_pretrain, params=_phase(1e-4, 3e-2)),
            Stage("teacher_finetune", _teacher_finetune, params=_phase(1e-5, 1e-2)),
            Stage("distill_1", _distill_1, params=_distill_params()),
            Stage("distill_2", _distill_2, params=_distill_params()),
            Stage("distill_3", _distill_3, params=_distill_params()),
        ],
        cache=cache,
    )


# --- vision with post-processing -------------------------------------------------------------
_VIEWS = ((1, 0), (-1, 0), (0, 1), (0, -1))  # the test-time-augmented views


def _augment(*, noise_std: float, max_shift: int, copies: int) -> dict:
    """The training set and `copies` shifted, noised copies of it; validation untouched."""
    return augmented_digits(noise_std, max_shift, copies)


def _train(data: dict, *, lr: float, weight_decay: float) -> dict:
    """Train the CNN (the costly stage) and keep only its validation logits, on the original
    images and on each shifted view: all that post-processing needs."""
    import torch

    model = fit_classifier(small_cnn(24), data, lr, weight_decay, epochs=8)
    X = data["X_val"]
    with torch.no_grad():
        views = torch.stack([model(shift_images(X, dx, dy)) for dx, dy in _VIEWS])
        return {"logits": model(X), "view_logits": views, "y": data["y_val"]}


def _postprocess(prev: dict, *, temperature: float, tta_weight: float, smoothing: float) -> dict:
    """Calibrated, test-time-augmented, smoothed probabilities and their NLL."""
    import torch

    t = float(temperature)
    plain = (prev["logits"] / t).softmax(-1)
    views = (prev["view_logits"] / t).softmax(-1).mean(0)
    probs = (1.0 - tta_weight) * plain + tta_weight * views
    probs = (1.0 - smoothing) * probs + smoothing / probs.shape[-1]
    y = prev["y"]
    nll = torch.nn.functional.nll_loss(probs.clamp_min(1e-12).log(), y)
    return {"objective": float(nll), "accuracy": float((probs.argmax(1) == y).float().mean())}


def postprocess_pipeline(cache: Any = None) -> Pipeline:
    """Vision with post-processing: augmentation, training (the bulk), post-processing."""
    return Pipeline(
        [
            Stage("augment", _augment, params=augment_params()),
            Stage("train", _train, params=_phase(1e-4, 3e-2)),
            Stage(
                "postprocess",
                _postprocess,
                params={
                    "temperature": Float(0.25, 4.0, log=True),
                    "tta_weight": Float(0.0, 1.0),
                    "smoothing": Float(0.0, 0.2),
                },
            ),
        ],
        cache=cache,
    )
