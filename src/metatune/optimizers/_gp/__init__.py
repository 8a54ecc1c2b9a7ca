"""The GP machinery behind every model-based optimizer, one job per module.

* `fit`: output transform and the one warm-started GP fit (objective and cost GPs alike);
* `cost_models`: GPs on log stage or trial cost, built from the trials' cost records;
* `acquisition`: LogEI/UCB with fantasies, the cost term, cost cooling, fixed-feature wrapper;
* `search`: the multi-start acquisition search over a mixed space;
* `history`: what the optimizers read from trials (repeats, costs, stage prefixes);
* `seeds`: the random state of one suggestion.

The public optimizers (`gp.py`, `cost_aware.py`, `eeipu.py`, `ms_bo.py`) are thin classes over
these; nothing here is public API.
"""
