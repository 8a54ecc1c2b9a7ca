"""The engine: builds the dataflow graph of a multilevel problem and runs it."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

import metatune.mlo.distributed as _dist
from metatune.mlo.config import EngineConfig
from metatune.mlo.hypergradients import check_options, get_hypergradient
from metatune.mlo.problem import Problem
from metatune.mlo.tensors import fill_none, swap_parameters


def _detached(tensors: Sequence[Tensor | None]) -> list[Any]:
    """The tensors without autograd history (None stays None; no-op for plain tensors)."""
    return [t.detach() if t is not None and t.requires_grad else t for t in tensors]


def _grad_or_none(loss: Tensor, inputs: list[Tensor], create_graph: bool) -> list[Tensor | None]:
    """d loss / d inputs, None for inputs the loss does not read (no zeros are materialized)."""
    if not inputs or not loss.requires_grad:
        return [None] * len(inputs)
    return list(torch.autograd.grad(loss, inputs, create_graph=create_graph, allow_unused=True))


def _owned(grads: list[Tensor]) -> list[Tensor]:
    """``grads`` made safe to become ``.grad``: autograd may return broadcast (stride-0) views
    or one tensor for several inputs, which an in-place ``.grad`` update (gradient clipping)
    must not see; only such tensors are copied, so the common case costs no copy."""
    seen: set[int] = set()
    out = []
    for g in grads:
        ptr = g.untyped_storage().data_ptr()
        if not g.is_contiguous() or (ptr in seen and g.numel() > 0):
            g = g.clone()
        else:
            seen.add(ptr)
        out.append(g)
    return out


class Engine:
    """Runs a multilevel optimization problem, Betty-style.

    ``dependencies["u2l"][upper] = [lowers]``: the lowers' losses read the upper's parameters;
    ``dependencies["l2u"][lower] = [uppers]``: the uppers' losses read the lower's parameters.
    Lowest problems step every iteration; a problem steps once each of its lower problems has
    taken ``unroll_steps`` (x ``gradient_accumulation``) steps since its last step. Its gradient is
    the direct gradient plus, for every ``l2u`` source and every u2l path from that source up to
    it, the chain of best-response vector-Jacobian products (the lower problem of each hop picks
    the hypergradient method), so every method works on paths of any length.
    """

    def __init__(
        self,
        problems: Sequence[Problem],
        dependencies: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
        config: EngineConfig | None = None,
    ) -> None:
        self.config = config if config is not None else EngineConfig()
        if not isinstance(self.config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, got {type(config).__name__}")
        self.problems: dict[str, Problem] = {}
        for p in problems:
            if not isinstance(p, Problem):
                raise TypeError(f"problems must be Problem instances, got {type(p).__name__}")
            if p.name in self.problems:
                raise ValueError(f"duplicate problem name {p.name!r}")
            self.problems[p.name] = p
        if not self.problems:
            raise ValueError("problems must not be empty")
        self._build_graph(dependencies or {})
        for p in self.problems.values():
            p.set_peers(self.problems)
        self.global_step = 0
        self.losses: dict[str, list[tuple[int, float]]] = {n: [] for n in self.problems}
        self.validation_history: list[tuple[int, dict[str, float]]] = []
        self._ready: dict[tuple[str, str], bool] = {}
        self._all_parameters: list[nn.Parameter] = []  # for _watch_list; refreshed by run()
        if self.config.distributed:
            _dist.require_process_group()
            for p in self.problems.values():
                _dist.broadcast_module(p.module)

    # ------------------------------------------------------------------ graph
    def _build_graph(self, deps: Mapping[str, Mapping[str, Sequence[str]]]) -> None:
        unknown_keys = set(deps) - {"u2l", "l2u"}
        if unknown_keys:
            raise ValueError(
                f"dependencies has unknown key(s) {sorted(unknown_keys)}; allowed: 'u2l', 'l2u'"
            )
        names = self.problems
        self._u2l_children: dict[str, list[str]] = {n: [] for n in names}
        self._u2l_parents: dict[str, list[str]] = {n: [] for n in names}
        self._l2u_sources: dict[str, list[str]] = {n: [] for n in names}
        self._lowers: dict[str, list[str]] = {n: [] for n in names}
        self._uppers: dict[str, list[str]] = {n: [] for n in names}

        def check(name: Any, where: str) -> str:
            if name not in names:
                raise ValueError(
                    f"unknown problem {name!r} in dependencies[{where}]; "
                    f"known problems: {sorted(names)}"
                )
            return name

        def add(upper: str, lower: str) -> None:
            if upper == lower:
                raise ValueError(f"problem {upper!r} depends on itself (cycle {upper} -> {upper})")
            if lower not in self._lowers[upper]:
                self._lowers[upper].append(lower)
                self._uppers[lower].append(upper)

        for kind in ("u2l", "l2u"):
            mapping = deps.get(kind, {})
            if not isinstance(mapping, Mapping):
                raise TypeError(f"dependencies[{kind!r}] must be a dict of name -> list of names")
            for key, values in mapping.items():
                check(key, f"{kind!r}]")
                if isinstance(values, str) or not isinstance(values, Sequence):
                    raise TypeError(
                        f"dependencies[{kind!r}][{key!r}] must be a list of problem names"
                    )
                for v in values:
                    check(v, f"{kind!r}][{key!r}")
                    if kind == "u2l":
                        if v not in self._u2l_children[key]:
                            self._u2l_children[key].append(v)
                            self._u2l_parents[v].append(key)
                        add(key, v)
                    else:
                        if key not in self._l2u_sources[v]:
                            self._l2u_sources[v].append(key)
                        add(v, key)
        self.order = self._toposort()  # lowest problems first
        # every u2l path from each l2u source up to the problem
        self._paths: dict[tuple[str, str], list[list[str]]] = {}
        for upper, sources in self._l2u_sources.items():
            for src in sources:
                self._paths[(src, upper)] = self._find_paths(src, upper)
                if not self._paths[(src, upper)]:
                    warnings.warn(
                        f"l2u edge {src!r} -> {upper!r}: no u2l path leads from {upper!r} down to "
                        f"{src!r}, so {src!r}'s parameters do not depend on {upper!r}'s and only "
                        "the direct gradient is used; add the u2l edge if that is not intended",
                        stacklevel=3,
                    )
        # problems whose steps keep their gradient graph for the unrolled method: see
        # _records_step_graph
        self._reuse_step_graph: dict[str, bool] = {}
        for name, p in self.problems.items():
            method = get_hypergradient(p.config.method) if self._uppers[name] else None
            if method is not None:
                check_options(p.config.method, p.config.options, f"problem {name!r}")
            p.history.recording = bool(getattr(method, "needs_history", False))
            self._reuse_step_graph[name] = (
                p.history.recording
                and bool(getattr(method, "reuses_step_graph", False))
                and p.config.unroll_steps == 1
                and p.config.gradient_accumulation == 1
            )

    def _toposort(self) -> list[str]:
        state: dict[str, int] = {}
        order: list[str] = []
        stack: list[str] = []

        def visit(n: str) -> None:
            if state.get(n) == 2:
                return
            if state.get(n) == 1:
                cycle = stack[stack.index(n) :] + [n]
                raise ValueError(
                    "dependencies contain a cycle: "
                    + " -> ".join(cycle)
                    + " (an upper problem cannot also be below itself)"
                )
            state[n] = 1
            stack.append(n)
            for low in self._lowers[n]:
                visit(low)
            stack.pop()
            state[n] = 2
            order.append(n)

        for n in self.problems:
            visit(n)
        return order

    def _find_paths(self, src: str, dst: str) -> list[list[str]]:
        paths: list[list[str]] = []

        def walk(node: str, path: list[str]) -> None:
            if node == dst:
                paths.append(path)
                return
            for parent in self._u2l_parents[node]:
                walk(parent, path + [parent])

        walk(src, [src])
        return paths

    def paths(self, upper: str) -> list[list[str]]:
        """The hypergradient paths into ``upper``: lists of names from a source up to it."""
        return [p for (s, u), ps in self._paths.items() if u == upper for p in ps]

    # ------------------------------------------------------------------ gradients
    def _gradients(
        self,
        problem: Problem,
        loss: Tensor,
        params: Sequence[Tensor],
        *,
        create_graph: bool = False,
    ) -> tuple[list[Tensor | None], list[Tensor]]:
        """(direct, total) gradient of ``loss`` w.r.t. ``params`` (the problem's parameters or
        stand-ins for them).

        The direct part is None for parameters the loss does not read and, with
        ``create_graph``, stays differentiable. The total is detached and owned (see
        ``_owned``), so it can become ``.grad`` as is. A source whose parameters the loss does
        not read at all gets no hypergradient hop.
        """
        sources = [self.problems[s] for s in self._l2u_sources[problem.name]]
        src_params = [s.trainable_parameters() for s in sources]
        flat = list(params) + [q for ps in src_params for q in ps]
        scale = problem.loss_scale
        grads = _grad_or_none(loss * scale if scale != 1.0 else loss, flat, create_graph)
        if scale != 1.0:
            grads = [None if g is None else g / scale for g in grads]
        n = len(params)
        direct = grads[:n]
        total = _detached(direct)
        offset = n
        for src, ps in zip(sources, src_params, strict=True):
            vec = grads[offset : offset + len(ps)]
            offset += len(ps)
            if all(v is None for v in vec):
                continue
            vec = fill_none(_detached(vec), ps)
            for path in self._paths[(src.name, problem.name)]:
                v = vec
                for low, up in zip(path[:-1], path[1:], strict=True):
                    v = self._hop(v, self.problems[low], self.problems[up])
                total = [h if t is None else t + h for t, h in zip(total, v, strict=True)]
        return direct, _owned(fill_none(total, params))

    @staticmethod
    def _hop(vector: list[Tensor], lower: Problem, upper: Problem) -> list[Tensor]:
        """``vector @ d lower* / d upper`` by the lower problem's hypergradient method."""
        fn = get_hypergradient(lower.config.method)
        # re-evaluating the lower loss must not move buffers (e.g. BatchNorm stats)
        buffers = list(lower.module.buffers())
        saved = [b.detach().clone() for b in buffers]
        try:
            return _detached(fn(vector, lower, upper, lower.config.options))
        finally:
            if buffers:
                with torch.no_grad():
                    for b, old in zip(buffers, saved, strict=True):
                        b.copy_(old)

    def hypergradient(self, name: str, batch: Any = None) -> list[Tensor]:
        """Total gradient of problem ``name``'s loss (on ``batch``, else its last or next batch)
        w.r.t. its parameters, without stepping anything or moving any buffer. With
        ``distributed=True`` it is averaged over ranks (one all-reduce; call it on every rank)."""
        problem = self._problem(name)
        if batch is None:
            batch = problem.last_batch if problem.last_batch is not None else problem.next_batch()
        buffers = [b for p in self.problems.values() for b in p.module.buffers()]
        saved = [b.detach().clone() for b in buffers]
        try:
            _, grads = self._gradients(problem, problem.loss(batch), problem.trainable_parameters())
            return _dist.all_reduce_tensors(grads) if self.config.distributed else grads
        finally:
            with torch.no_grad():
                for b, old in zip(buffers, saved, strict=True):
                    b.copy_(old)

    # ------------------------------------------------------------------ stepping
    def _problem(self, name: str) -> Problem:
        if name not in self.problems:
            raise ValueError(f"unknown problem {name!r}; known problems: {sorted(self.problems)}")
        return self.problems[name]

    def _step(self, problem: Problem) -> None:
        cfg = problem.config
        batch = problem.next_batch()
        problem.last_batch = batch
        record = self._records_step_graph(problem)
        named = problem.named_trainable_parameters() if record else []
        params = [p for _, p in named] if record else problem.trainable_parameters()
        # the parameters at the start of the optimizer step in progress (None unless recorded)
        start = problem.history.note(params, batch, requires_grad=record)
        if record:  # the loss reads stand-ins for the parameters: the step's graph outlives it
            assert start is not None
            stand_ins = {n: w for (n, _), w in zip(named, start, strict=True)}
            with swap_parameters(problem.module, stand_ins):
                loss = problem.loss(batch)
            watch = self._watch_list(params)
            direct, grads = self._gradients(problem, loss, start, create_graph=True)
        else:
            loss = problem.loss(batch)
            grads = self._gradients(problem, loss, params)[1]
        due = problem.accumulate_gradients(params, grads)
        if problem.training_step_count % self.config.log_step == 0:
            self._log(problem, float(loss.detach()))
        # .grad holds them now; drop the locals so that neither they nor the loss outlive the
        # optimizer step into the upper steps triggered below (peak memory)
        grads = loss = None
        if not due:
            return
        if self.config.distributed:  # the full (direct + hyper) gradient, once per update
            _dist.all_reduce_gradients(params)
        problem.optimizer_step(params)
        entry = problem.history.commit()
        if entry is not None and record:
            assert start is not None
            entry.attach_graph(fill_none(direct, start), watch)
        after_warmup = problem.step_count - cfg.warmup_steps
        if after_warmup > 0 and after_warmup % cfg.unroll_steps == 0:
            for up in self._uppers[problem.name]:
                self._ready[(problem.name, up)] = True
                if all(self._ready.get((low, up), False) for low in self._lowers[up]):
                    for low in self._lowers[up]:
                        self._ready[(low, up)] = False
                    self._step(self.problems[up])
        if entry is not None:
            entry.drop_graph()  # the upper steps it was recorded for are done

    def _records_step_graph(self, problem: Problem) -> bool:
        """Whether this training step should keep its differentiable gradient in the history:
        only when it is a whole one-step unroll window that ends in upper steps, so the unrolled
        hypergradient can reuse it instead of replaying the step (same numbers, half the work)."""
        return (
            self._reuse_step_graph.get(problem.name, False)
            and problem.loss_scale == 1.0
            and problem.step_count + 1 > problem.config.warmup_steps
        )

    def _watch_list(self, own: list[nn.Parameter]) -> list[tuple[Tensor, int]]:
        """Every parameter but ``own`` with its version counter: a recorded graph is stale (and
        the step is replayed instead) once any parameter it may have read is changed in place."""
        skip = {id(p) for p in own}
        return [(t, t._version) for t in self._all_parameters if id(t) not in skip]

    def _log(self, problem: Problem, loss: float) -> None:
        self.losses[problem.name].append((self.global_step, loss))
        logger = self.config.logger
        if logger == "stdout":
            print(f"[{self.global_step}] {problem.name}: loss={loss:.6g}")
        elif callable(logger):
            logger(problem.name, self.global_step, {"loss": loss})

    def run(self) -> None:
        """Train until ``config.train_iters`` iterations (resumes from ``global_step``)."""
        leaves = [n for n in self.order if not self._lowers[n]]
        for p in self.problems.values():
            p.module.train()
        try:
            self._list_parameters()
            while self.global_step < self.config.train_iters:
                self.global_step += 1
                for name in leaves:
                    self._step(self.problems[name])
                vs = self.config.valid_step
                if vs is not None and self.global_step % vs == 0:
                    self._run_validation()
                    self._list_parameters()  # in case the hook changed a module
        finally:
            for p in self.problems.values():
                p.forget_parameters()

    def _list_parameters(self) -> None:
        """List every module's parameters once; run() assumes modules keep them while it runs
        (which their optimizers assume too). Whether they require grad is still read live."""
        self._all_parameters = [t for p in self.problems.values() for _, t in p.list_parameters()]

    def _run_validation(self) -> None:
        modes = {n: p.module.training for n, p in self.problems.items()}
        for p in self.problems.values():
            p.module.eval()
        try:
            result = self.validation()
        finally:
            for n, p in self.problems.items():
                p.module.train(modes[n])
        if result:
            result = {
                k: float(v.detach()) if isinstance(v, Tensor) else float(v)
                for k, v in result.items()
            }
            self.validation_history.append((self.global_step, result))
            logger = self.config.logger
            if logger == "stdout":
                print(f"[{self.global_step}] validation: {result}")
            elif callable(logger):
                logger("validation", self.global_step, result)

    def validation(self) -> dict[str, float] | None:
        """Validation hook, run every ``valid_step`` iterations; override or pass validation_fn."""
        fn = self.config.validation_fn
        return fn(self) if fn is not None else None

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        return {
            "global_step": self.global_step,
            "problems": {n: p.state_dict() for n, p in self.problems.items()},
            "ready": dict(self._ready),
            "losses": {n: list(v) for n, v in self.losses.items()},
            "validation_history": list(self.validation_history),
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        missing = set(self.problems) - set(state["problems"])
        if missing:
            raise ValueError(f"checkpoint has no state for problem(s) {sorted(missing)}")
        for n, p in self.problems.items():
            p.load_state_dict(state["problems"][n])
        self.global_step = int(state["global_step"])
        self._ready = dict(state["ready"])
        self.losses = {n: list(state["losses"].get(n, [])) for n in self.problems}
        self.validation_history = list(state["validation_history"])
        torch.set_rng_state(state["torch_rng"])

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a checkpoint atomically (temp file, then rename)."""
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")
        os.close(fd)
        try:
            torch.save(self.state_dict(), tmp)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise

    def load(self, path: str | os.PathLike[str]) -> None:
        self.load_state_dict(torch.load(os.fspath(path), weights_only=False))
