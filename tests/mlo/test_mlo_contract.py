"""The contract between problems, the engine and hypergradient methods.

Methods use a problem only through the public protocol ``ProblemLike``; solvers plug into
implicit differentiation through a registry; mlo's modules import each other one way.
"""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch
from mlo_testlib import DT, ridge_data, ridge_engine, ridge_exact_hypergradient

from metatune.mlo import (
    ImplicitHypergradient,
    ProblemLike,
    available_linear_solvers,
    get_hypergradient,
    register_hypergradient,
    register_linear_solver,
)
from metatune.mlo.hypergradients import HYPERGRADIENTS
from metatune.mlo.linear_solve import LINEAR_SOLVERS
from metatune.mlo.protocol import StepRecord

MLO = Path(__file__).resolve().parents[2] / "src" / "metatune" / "mlo"
PROTOCOL_MEMBERS = (
    "name",
    "module",
    "optimizer",
    "last_batch",
    "history",
    "step_count",
    "loss",
    "trainable_parameters",
    "named_trainable_parameters",
)


class ProtocolView:
    """A problem seen through ProblemLike only: any other member raises AttributeError."""

    def __init__(self, problem):
        object.__setattr__(self, "_problem", problem)

    def __getattr__(self, item):
        if item not in PROTOCOL_MEMBERS:
            raise AttributeError(f"{item!r} is not part of ProblemLike")
        return getattr(object.__getattribute__(self, "_problem"), item)


def test_problem_implements_the_protocol():
    engine, _ = ridge_engine("unrolled", unroll=2)
    engine.run()
    inner = engine.problems["inner"]
    assert isinstance(inner, ProblemLike)
    assert len(inner.history) == 2 and all(isinstance(h, StepRecord) for h in inner.history)
    assert inner.step_count == 2 and inner.last_batch is not None


@pytest.mark.parametrize(
    "method,options",
    [
        ("cg", {"iterations": 5}),
        ("neumann", {"iterations": 5, "alpha": 0.1}),
        ("finite_difference", {"scale": 0.5}),
        ("unrolled", {}),
        ("reinforce", {"samples": 2, "seed": 0}),
    ],
)
def test_methods_use_only_the_protocol(method, options):
    engine, _ = ridge_engine(method, options, unroll=2, converged=False, train_iters=4)
    engine.run()
    inner, outer = engine.problems["inner"], engine.problems["outer"]
    vec = [torch.ones_like(p) for p in inner.trainable_parameters()]
    fn = get_hypergradient(method)
    through_view = fn(vec, ProtocolView(inner), ProtocolView(outer), options)
    direct = fn(vec, inner, outer, options)
    assert all(torch.equal(a, b) for a, b in zip(through_view, direct, strict=True))


def _dense_solve(matvec, b, options):
    """H^-1 b with H built column by column from Hessian-vector products (tiny problems only)."""
    shapes = [v.shape for v in b]
    sizes = [v.numel() for v in b]
    flat_b = torch.cat([v.reshape(-1) for v in b])
    cols = []
    for i in range(flat_b.numel()):
        e = torch.zeros_like(flat_b)
        e[i] = 1.0
        cols.append(torch.cat([h.reshape(-1) for h in matvec(list(e.split(sizes)))]))
    H = torch.stack(cols, dim=1) + float(options.get("damping", 0.0)) * torch.eye(
        len(cols), dtype=DT
    )
    x = torch.linalg.solve(H, flat_b)
    return [c.reshape(s) for c, s in zip(x.split(sizes), shapes, strict=True)]


def test_a_new_solver_is_a_new_method():
    register_linear_solver("test-dense", _dense_solve, options={"damping": (float, 0.0, None)})
    try:
        register_hypergradient("test-dense")(ImplicitHypergradient("test-dense"))
        assert "test-dense" in available_linear_solvers()
        assert get_hypergradient("test-dense").option_spec == {"damping": (float, 0.0, None)}
        results = []
        for method, options in (("test-dense", {}), ("cg", {"iterations": 20})):
            engine, _ = ridge_engine(method, options)
            engine.run()
            results.append(float(engine.hypergradient("outer")[0]))
        dense, cg = results
        # an exact solve: CG's answer after it has converged on the 5-dimensional problem
        assert abs(dense - cg) / abs(cg) < 1e-10
        exact = ridge_exact_hypergradient(*ridge_data(0), math.log(0.3))
        assert abs(dense - exact) / abs(exact) < 1e-6
        with pytest.raises(ValueError, match=r"unknown option 'iterations'.*allowed"):
            ridge_engine("test-dense", {"iterations": 3})
        with pytest.raises(ValueError, match="already registered"):
            register_linear_solver("test-dense", lambda matvec, b, options: b)
    finally:
        for registry in (HYPERGRADIENTS, LINEAR_SOLVERS):
            if "test-dense" in registry:
                registry.unregister("test-dense")


def test_builtin_implicit_methods_and_solvers():
    assert set(available_linear_solvers()) >= {"cg", "neumann", "identity"}
    assert get_hypergradient("darts") is get_hypergradient("finite_difference")
    for name, solver in (("cg", "cg"), ("neumann", "neumann"), ("finite_difference", "identity")):
        method = get_hypergradient(name)
        assert isinstance(method, ImplicitHypergradient) and method.solver == solver
    with pytest.raises(ValueError, match=r"unknown linear solver 'nope'; available: .*cg"):
        ImplicitHypergradient("nope")
    with pytest.raises(ValueError, match="cross"):
        ImplicitHypergradient("cg", cross="nope")


# ---------------------------------------------------------------- static checks on the source
def _modules() -> dict[str, Path]:
    out = {}
    for f in MLO.rglob("*.py"):
        parts = ["metatune", "mlo", *f.relative_to(MLO).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of every import statement, in functions and TYPE_CHECKING blocks too."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: relative import"
            out.append((node.module or "", [a.name for a in node.names]))
    return out


def test_mlo_imports_are_one_way_and_public():
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        for target, names in _imports(path):
            if not target.startswith("metatune"):
                continue
            for name in names:
                assert not name.startswith("_"), f"{mod} imports private {name!r} from {target}"
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in mods]
            for t in subs or [target]:
                if t in mods and t != mod:
                    graph[mod].add(t)
    assert "metatune.mlo.protocol" in mods and not graph["metatune.mlo.protocol"]
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        assert node not in stack, "import cycle: " + " -> ".join([*stack, node])
        if node in done:
            return
        for nxt in graph[node]:
            visit(nxt, [*stack, node])
        done.add(node)

    for m in graph:
        visit(m, [])


def test_engine_and_methods_touch_no_private_member_of_a_problem():
    # in these modules a `_name` attribute may only be read on `self` (or be torch's version
    # counter of a tensor); a problem is used through its public members only
    files = [MLO / "engine.py", *(MLO / "hypergradients").rglob("*.py")]
    files += list((MLO / "linear_solve").rglob("*.py"))
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            attr = node.attr
            if not attr.startswith("_") or attr.startswith("__") or attr == "_version":
                continue
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            assert owner == "self", f"{path.name}:{node.lineno}: {ast.unparse(node)}"
