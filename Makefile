# Every target sets up .venv itself, so a fresh clone needs nothing but `make demo` or `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install -q -c constraints.txt
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench

.PHONY: install demo test test-all lint bench lhopt-policy lhopt-base lhopt-finetuned lhopt-group lhopt-group-tuned lhopt-regression lhopt-vectorized lhopt-vectorized-b lhopt-select lhopt-vectorized-c lhopt-vectorized-d lhopt-select-2 clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PIP) torch==2.13.0
	$(PIP) -e ".[dev]"
	touch $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(PIP) -e ".[dev,bench]"
	touch $(BENCH_STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/metatune demo

test: $(STAMP)
	$(PY) -m pytest -q -n 2

test-all: $(STAMP)
	$(PY) -m pytest -q -n 2 -m "slow or not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

# benchmarks/mlo.py needs betty-ml (see the bench-betty extra); run it by hand.
bench: $(BENCH_STAMP)
	$(PY) benchmarks/synthetic.py --check
	$(PY) benchmarks/pipelines.py
	$(PY) benchmarks/lhopt.py --seeds 5

# lhopt policies (deterministic on one machine; --workers does not change the result; other CPU
# models give similar policies, not the same bytes).
LHOPT_MIX = quadratic,mlp-tabular,cnn-digits,char-lm,majority-rnn,mlp-regression

# Re-creates the shipped policy (since 2026-12-01; about 30 min on 2 cores): a fine-tuning of
# the base policy, iteration 80 picked by the rule in docs/benchmarks/lhopt.md.
lhopt-policy: $(STAMP)
	$(VENV)/bin/metatune lhopt train --out metatune-runs/lhopt-regr6 --iterations 160 \
		--episodes 16 --rollouts 4 --max-steps 400 --workers 2 --seed 6 --baseline-lrs 0.3,1,3 \
		--families $(LHOPT_MIX) --init-policy src/metatune/lhopt/policies/base.pt
	cp metatune-runs/lhopt-regr6/snapshots/policy-00080.pt src/metatune/lhopt/policies/default.pt

# The first policy trained with the lockstep engine on the procedural task space (2026-12-03;
# about 90 min on one core): fine-tuned from the shipped policy; the snapshot is chosen by
# docs/lhopt-selection-rule.md.
LHOPT_TRAIN_FAMILIES = mlp-friedman,mlp-linreg,mlp-classify,mlp-bundled,cnn-digits,mlp-charlm,gru-charlm,transformer-charlm
lhopt-vectorized: $(STAMP)
	$(VENV)/bin/metatune lhopt train --out metatune-runs/lhopt-vec --engine vectorized \
		--iterations 60 --episodes 32 --groups 2 --rollouts 4 --max-steps 1000 --seed 24 \
		--baseline-lrs 0.3,1,3 --families $(LHOPT_TRAIN_FAMILIES) \
		--init-policy src/metatune/lhopt/policies/default.pt

# The second run of docs/lhopt-selection-rule.md's amendment: the same recipe, another seed.
lhopt-vectorized-b: $(STAMP)
	$(VENV)/bin/metatune lhopt train --out metatune-runs/lhopt-vec-b --engine vectorized \
		--iterations 40 --episodes 32 --groups 2 --rollouts 4 --max-steps 1000 --seed 25 \
		--baseline-lrs 0.3,1,3 --families $(LHOPT_TRAIN_FAMILIES) \
		--init-policy src/metatune/lhopt/policies/default.pt

# Rule 2's runs (docs/lhopt-selection-rule.md): run A's recipe with two more seeds.
lhopt-vectorized-c lhopt-vectorized-d: lhopt-vectorized-%: $(STAMP)
	$(VENV)/bin/metatune lhopt train --out metatune-runs/lhopt-vec-$* --engine vectorized \
		--iterations 40 --episodes 32 --groups 2 --rollouts 4 --max-steps 1000 \
		--seed $(if $(filter c,$*),26,27) --baseline-lrs 0.3,1,3 --families $(LHOPT_TRAIN_FAMILIES) \
		--init-policy src/metatune/lhopt/policies/default.pt

lhopt-select-2: $(STAMP)
	$(PY) benchmarks/lhopt_select.py metatune-runs/lhopt-vec-c metatune-runs/lhopt-vec-d \
		--suite v2 --out docs/benchmarks/lhopt-selection-2 \
		--copy-to src/metatune/lhopt/policies/default.pt

# Applies docs/lhopt-selection-rule.md to both runs (docs/benchmarks/lhopt-selection.md); the
# winner is copied over the shipped policy only if it scores above it.
lhopt-select: $(STAMP)
	$(PY) benchmarks/lhopt_select.py metatune-runs/lhopt-vec metatune-runs/lhopt-vec-b \
		--copy-to src/metatune/lhopt/policies/default.pt

# Re-creates the base policy (the first shipped one, 2026-11-23; about 50 min on 2 cores).
LHOPT_ITERATIONS ?= 420
lhopt-base: $(STAMP)
	$(VENV)/bin/metatune lhopt train --out metatune-runs/lhopt-default \
		--iterations $(LHOPT_ITERATIONS) --max-steps 400 --workers 2
	cp metatune-runs/lhopt-default/policy.pt src/metatune/lhopt/policies/base.pt

# The fine-tuned candidate of docs/benchmarks/lhopt-finetuned.md (not shipped; about 45 min on
# 2 cores): from the shipped policy, 160 iterations against a tuned AdamW baseline, then 400 more
# with each task's initial weight scale randomized too.
lhopt-finetuned: $(STAMP)
	$(VENV)/bin/metatune lhopt train --out metatune-runs/lhopt-tuned --iterations 160 \
		--max-steps 400 --workers 2 --seed 1 --baseline-lrs 0.3,1,3 \
		--init-policy src/metatune/lhopt/policies/base.pt
	$(VENV)/bin/metatune lhopt train --out metatune-runs/lhopt-finetuned --iterations 400 \
		--max-steps 400 --workers 2 --seed 2 --baseline-lrs 0.3,1,3 --init-scale-spread 0.5 \
		--init-policy metatune-runs/lhopt-tuned/policy.pt

# The group-rollout candidate of docs/benchmarks/lhopt-group/lhopt.md (not shipped; about an hour
# on 2 cores): from the shipped policy, 4 runs per drawn situation, leave-one-out advantages.
# The evaluated policy is snapshots/policy-00160.pt (picked by a rule fixed before evaluation).
lhopt-group: $(STAMP)
	$(VENV)/bin/metatune lhopt train --out metatune-runs/lhopt-group --iterations 200 \
		--episodes 16 --rollouts 4 --max-steps 400 --workers 2 --seed 3 \
		--init-policy src/metatune/lhopt/policies/base.pt

# The candidate of docs/benchmarks/lhopt-group-tuned/lhopt.md (not shipped; about 30 min on 2
# cores, then 20 more for the extension to 300): group rollouts against a tuned AdamW. The rule
# picked snapshots/policy-00140.pt after 160 iterations and policy-00280.pt after 300.
lhopt-group-tuned: $(STAMP)
	$(VENV)/bin/metatune lhopt train --out metatune-runs/lhopt-group-tuned --iterations 300 \
		--episodes 16 --rollouts 4 --max-steps 400 --workers 2 --seed 4 --baseline-lrs 0.3,1,3 \
		--init-policy src/metatune/lhopt/policies/base.pt

# The candidate of docs/benchmarks/lhopt-regression/lhopt.md (not shipped; about 30 min on 2
# cores): as lhopt-group-tuned plus the mlp-regression family; the rule picked snapshot 100.
lhopt-regression: $(STAMP)
	$(VENV)/bin/metatune lhopt train --out metatune-runs/lhopt-regr --iterations 160 \
		--episodes 16 --rollouts 4 --max-steps 400 --workers 2 --seed 5 --baseline-lrs 0.3,1,3 \
		--families $(LHOPT_MIX) --init-policy src/metatune/lhopt/policies/base.pt

clean:
	rm -rf $(VENV) .pytest_cache metatune-runs
