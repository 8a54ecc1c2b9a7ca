"""A pipeline stage: a named function with its own hyperparameters and an identity for caching."""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
import numbers
import pickle
import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from metatune.pipeline.cache import Serializer, get_serializer
from metatune.space import Param, is_param

__all__ = ["Stage", "StageResult", "StageError"]

_STAGE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class StageResult:
    """Return this from a stage to report its own cost (e.g. GPU-seconds, or a simulated clock).

    `output` is what the next stage receives (or, for the last stage, the objective: a float or
    a dict with "objective"); `cost` replaces the wall seconds as the stage's recorded cost.
    """

    output: Any
    cost: float | None = None

    def __post_init__(self) -> None:
        if self.cost is not None:
            if isinstance(self.cost, bool) or not isinstance(self.cost, numbers.Real):
                raise TypeError(f"StageResult cost must be a number, got {self.cost!r}")
            if not math.isfinite(float(self.cost)) or self.cost < 0:
                raise ValueError(f"StageResult cost must be finite and >= 0, got {self.cost!r}")


class StageError(RuntimeError):
    """A stage raised: `stage` names it and `__cause__` is the original exception."""

    def __init__(self, stage: str, exc: BaseException) -> None:
        super().__init__(f"stage {stage!r} failed: {type(exc).__name__}: {exc}")
        self.stage = stage
        self.original = exc


def _referenced_helpers(target: Any, limit: int = 64) -> tuple[list[Any], list[str]]:
    """Functions and classes of `target`'s own module that it uses by global name, directly or
    through other such helpers (and closures): a changed helper must change the stage's key.
    Also the fingerprints of the plain data those functions read from module globals and
    closures (see `_data_fingerprint`): a changed constant must change it too.

    Only the stage's own module is followed; library code is identified by its version, not here.
    """
    module = getattr(target, "__module__", None)
    seen: dict[int, Any] = {}
    data: list[str] = []
    todo = [target]
    while todo and len(seen) < limit:
        obj = todo.pop()
        funcs = [obj] if inspect.isroutine(obj) else []
        if inspect.isclass(obj):
            funcs = [v for v in vars(obj).values() if inspect.isfunction(v)]
        for fn in funcs:
            fn = inspect.unwrap(fn)
            code = getattr(fn, "__code__", None)
            if code is None:
                continue
            names: set[str] = set()
            codes = [code]
            while codes:  # nested functions, comprehensions and lambdas too
                c = codes.pop()
                names.update(c.co_names)
                codes += [k for k in c.co_consts if inspect.iscode(k)]
            scope = getattr(fn, "__globals__", {})
            found = [(n, scope[n]) for n in sorted(names) if n in scope]
            cells = [c.cell_contents for c in (fn.__closure__ or ()) if _filled(c)]
            found += [(f"<closure {i}>", v) for i, v in enumerate(cells)]
            for label, ref in found:
                if inspect.isfunction(ref) or inspect.isclass(ref):
                    if (
                        getattr(ref, "__module__", None) == module
                        and ref is not target
                        and id(ref) not in seen
                    ):
                        seen[id(ref)] = ref
                        todo.append(ref)
                elif _is_plain_data(ref):  # checked here: other globals are left out entirely
                    data.append(f"{fn.__qualname__}:{label}={_data_fingerprint(ref, False)}")
    helpers = sorted(seen.values(), key=lambda r: r.__qualname__)
    return helpers, sorted(data)


_PLAIN_SCALARS = (bool, int, float, complex, str, bytes, type(None))
_PLAIN_CONTAINERS = (tuple, list, dict, set, frozenset)
_ARRAY_TYPES = {
    ("numpy", "ndarray"),
    ("torch", "Tensor"),
    ("pandas.core.frame", "DataFrame"),
    ("pandas.core.series", "Series"),
}


def _is_plain_data(value: Any, depth: int = 0) -> bool:
    """Numbers, strings, arrays, tensors, data frames and the built-in containers of them:
    values a stage reads as data. Other objects (counters, loggers, models being trained) are
    state, and hashing them would only turn every change of state into a cache miss."""
    kind = type(value)
    if kind in _PLAIN_SCALARS or (kind.__module__, kind.__name__) in _ARRAY_TYPES:
        return True
    if kind.__module__ == "numpy" and hasattr(value, "dtype"):  # numpy scalars
        return True
    if kind not in _PLAIN_CONTAINERS or depth > 4:
        return False
    items = [*value.keys(), *value.values()] if kind is dict else list(value)
    return all(_is_plain_data(v, depth + 1) for v in items)


def _data_fingerprint(value: Any, plain_only: bool = True) -> str:
    """A hash of a value's pickle (exact, unlike repr, which numpy shortens for large arrays),
    else of its repr. With `plain_only`, for what a function merely reads from globals and
    closures, objects that are not plain data are identified by their type only; the arguments
    bound into a partial or a callable object are hashed whatever they are."""
    if plain_only and not _is_plain_data(value):
        kind = type(value)
        return f"type:{kind.__module__}.{kind.__qualname__}"
    try:
        blob = pickle.dumps(value, protocol=4)
    except Exception:  # unpicklable (a lock, a lambda): repr, which may hold an address
        blob = repr(value).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def _filled(cell: Any) -> bool:
    try:
        _ = cell.cell_contents
    except ValueError:  # an empty cell
        return False
    return True


def _unwrap_callable(fn: Any) -> tuple[Any, list[str]]:
    """The code object behind `fn` (a function, a class, or the class of a callable object) and
    the fingerprints of the state bound to it: a partial's arguments, a bound method's instance
    attributes, a callable object's attributes. The state is read anew at every call, since it
    may change between runs while the code does not."""
    data: list[str] = []
    if isinstance(fn, functools.partial):
        data += [f"arg{i}={_data_fingerprint(a, False)}" for i, a in enumerate(fn.args)]
        data += [f"{k}={_data_fingerprint(v, False)}" for k, v in sorted(fn.keywords.items())]
        inner, more = _unwrap_callable(fn.func)
        return inner, data + more
    if inspect.ismethod(fn) and not inspect.isclass(fn.__self__):  # obj.method: obj's state
        attrs = sorted(getattr(fn.__self__, "__dict__", {}).items())
        data += [f"self.{k}={_data_fingerprint(v, False)}" for k, v in attrs]
        return fn.__func__, data
    if not (inspect.isroutine(fn) or inspect.isclass(fn)):
        attrs = sorted(getattr(fn, "__dict__", {}).items())
        data += [f"self.{k}={_data_fingerprint(v, False)}" for k, v in attrs]
        return type(fn), data
    return fn, data


def _source_id(target: Any) -> str | None:
    """A hash of `target`'s source, of the same-module helpers it calls and of the plain data
    they read from globals and closures; None when its source cannot be read."""
    try:
        src = textwrap.dedent(inspect.getsource(target))
    except (OSError, TypeError):
        return None
    helpers, helper_data = _referenced_helpers(target)
    for helper in helpers:
        try:
            src += f"\n# {helper.__qualname__}\n" + textwrap.dedent(inspect.getsource(helper))
        except (OSError, TypeError):
            src += f"\n# {helper.__qualname__} (no source)"
    src += "\n# data\n" + "\n".join(helper_data)
    return hashlib.sha256(src.encode()).hexdigest()


def _has_python_code(target: Any) -> bool:
    """True for code written in Python (whose changes the source hash should see); False for
    functions of compiled extensions and builtins, identified by name like library code."""
    target = inspect.unwrap(target) if inspect.isroutine(target) else target
    return hasattr(target, "__code__") or (
        inspect.isclass(target) and getattr(target, "__module__", "builtins") != "builtins"
    )


class Stage:
    """One step of a Pipeline: ``fn(previous_output, **params) -> output``.

    `params` maps this stage's local parameter names to Float / Int / Categorical; in the
    pipeline's space they are called ``"<stage>.<param>"``. `version` identifies the code for the
    cache: change it to invalidate stored outputs. Without it the hash of the function's source,
    and of the functions and classes of its own module that it calls, is used (falling back to
    its qualified name); changes in other modules (libraries, your own imported packages) are
    not seen, so give a version when those matter.
    `serializer` is "auto" (torch.save for tensors and modules, else pickle), "pickle", "torch"
    or an object with ``name``, ``dumps(obj) -> bytes`` and ``loads(bytes) -> obj``.
    """

    def __init__(
        self,
        name: str,
        fn: Callable[..., Any],
        params: Mapping[str, Param] | None = None,
        version: str | int | None = None,
        serializer: str | Serializer | None = None,
    ) -> None:
        if not isinstance(name, str) or not _STAGE_NAME.match(name):
            raise ValueError(
                f"bad stage name {name!r}: use letters, digits, '_' and '-', starting with a "
                "letter or '_' (no '.', which separates stage and parameter names)"
            )
        if not callable(fn):
            raise TypeError(f"stage {name!r}: fn must be callable, got {fn!r}")
        params = dict(params or {})
        for pname, p in params.items():
            if not isinstance(pname, str) or not _PARAM_NAME.match(pname):
                raise ValueError(
                    f"stage {name!r}: bad parameter name {pname!r}: use letters, digits and '_', "
                    "starting with a letter or '_' (it is passed as a keyword argument)"
                )
            if not is_param(p):
                raise TypeError(
                    f"stage {name!r}: parameter {pname!r} must be Float, Int, Categorical or a "
                    "ParamType (a cell, ...), "
                    f"got {type(p).__name__}"
                )
        if version is not None and (
            isinstance(version, bool) or not isinstance(version, (str, int))
        ):
            raise TypeError(
                f"stage {name!r}: version must be a str, an int or None, got {version!r}"
            )
        if serializer is not None:
            get_serializer(serializer)  # validate now, before any work
        self.name = name
        self.fn = fn
        self.params: dict[str, Param] = params
        self.version = version
        self.serializer = serializer
        self._source: tuple[str | None] | None = None  # the source hash, computed once

    @property
    def has_source(self) -> bool:
        """False when the code's source cannot be read (defined by ``exec`` or ``python -c``):
        the cache could not tell when it changes, so such a stage is cached only with a version."""
        if self.version is not None:
            return True
        target, _ = _unwrap_callable(self.fn)
        return self._source_hash(target) is not None or not _has_python_code(target)

    def _source_hash(self, target: Any) -> str | None:
        if self._source is None:
            self._source = (_source_id(target),)
        return self._source[0]

    @property
    def code_id(self) -> str:
        """What identifies this stage's code in cache keys: its version, or a hash of its source
        (else its qualified name) and of the state bound to it (partial arguments, the attributes
        of the instance of a bound method or of a callable object), read at every call."""
        if self.version is not None:
            return f"version:{self.version}"
        target, data = _unwrap_callable(self.fn)
        source = self._source_hash(target)
        extra = hashlib.sha256("\n".join(data).encode()).hexdigest()[:32] if data else ""
        if source is None:
            qual = getattr(target, "__qualname__", None) or type(target).__qualname__
            module = getattr(target, "__module__", None) or type(target).__module__
            return f"name:{module}.{qual}" + (f":{extra}" if extra else "")
        return f"source:{source}" + (f":{extra}" if extra else "")

    def full_name(self, param: str) -> str:
        return f"{self.name}.{param}"

    def __repr__(self) -> str:
        return f"Stage({self.name!r}, params={list(self.params)}, version={self.version!r})"
