"""A content-addressed store of stage outputs on disk, shared safely by processes.

Each entry is one file ``<key>.entry`` in the cache folder: an HMAC-SHA256 tag, a small JSON
header (serializer, payload length, the compute seconds and cost of the stage that produced it)
and the serialized output. Writes go to a temp file in the same folder and are renamed into place with
``os.replace``, so a reader never sees a partial entry and two processes writing the same key
simply leave the last complete one. An entry that cannot be read (truncated, corrupt, written by an
unknown serializer) is deleted and reported as a miss, so the stage is recomputed. With
``max_bytes`` the least recently used entries are evicted after each write; an entry's access time
is its file's modification time, refreshed on every hit.

Security: entries are loaded with pickle (or ``torch.load(weights_only=False)``), which runs code
chosen by whoever wrote them. So every entry is signed with a secret key kept outside the cache
folder (by default ``~/.config/metatune/cache.key``, created with mode 0600 on first use; or
``$METATUNE_CACHE_KEY_FILE``), and only an entry whose tag checks out, bound to its own file
name, is ever unpickled: a planted or copied entry is a miss, not code. Sharing a cache between
users is an explicit choice: give them the same key (``Cache(folder, key=path_or_bytes)``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import os
import pickle
import struct
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from metatune._process import identity_is_dead, process_identity

__all__ = [
    "Cache",
    "CacheStats",
    "CachedValue",
    "Serializer",
    "PickleSerializer",
    "TorchSerializer",
    "get_serializer",
    "DEFAULT_CACHE_DIR",
    "KEY_FILE_ENV",
    "default_key_file",
]

DEFAULT_CACHE_DIR = os.path.join("metatune-runs", "cache")
_MAGIC = b"MTCACHE2"
_TAG_BYTES = 32  # HMAC-SHA256
_MAX_HEADER_BYTES = 64 * 1024  # ours are a few hundred bytes; a larger one is not ours
_SUFFIX = ".entry"
_TMP_PREFIX = ".tmp-"
_STALE_TMP_SECONDS = 3600.0  # for a temp file whose writer cannot be checked (another machine)
KEY_FILE_ENV = "METATUNE_CACHE_KEY_FILE"
_UMASK = os.umask(0o022)  # read once (os.umask can only be read by setting it)
os.umask(_UMASK)


@runtime_checkable
class Serializer(Protocol):
    """Turns a stage output into bytes and back; `name` is stored with each entry."""

    name: str

    def dumps(self, obj: Any) -> bytes: ...

    def loads(self, data: bytes) -> Any: ...


class PickleSerializer:
    """The default: pickle with the highest protocol."""

    name = "pickle"

    def dumps(self, obj: Any) -> bytes:
        return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)

    def loads(self, data: bytes) -> Any:
        return pickle.loads(data)  # noqa: S301 (documented: a cache trusts its writers)


class TorchSerializer:
    """torch.save / torch.load(weights_only=False), for tensors, modules and their containers."""

    name = "torch"

    def dumps(self, obj: Any) -> bytes:
        import torch

        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()

    def loads(self, data: bytes) -> Any:
        import torch

        return torch.load(io.BytesIO(data), weights_only=False)


_BUILTIN: dict[str, Serializer] = {"pickle": PickleSerializer(), "torch": TorchSerializer()}


def _holds_torch(obj: Any, depth: int = 0) -> bool:
    torch = sys.modules.get("torch")
    if torch is None:
        return False
    if isinstance(obj, (torch.Tensor, torch.nn.Module)):
        return True
    if depth >= 2:
        return False
    if isinstance(obj, dict):
        return any(_holds_torch(v, depth + 1) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return any(_holds_torch(v, depth + 1) for v in obj[:64])
    return False


def get_serializer(spec: str | Serializer | None, obj: Any = None) -> Serializer:
    """Resolve "auto" (default), "pickle", "torch" or a Serializer object for `obj`."""
    if spec is None or spec == "auto":
        return _BUILTIN["torch"] if _holds_torch(obj) else _BUILTIN["pickle"]
    if isinstance(spec, str):
        if spec not in _BUILTIN:
            raise ValueError(
                f"unknown serializer {spec!r}; allowed: 'auto', 'pickle', 'torch' "
                "or an object with name, dumps(obj) -> bytes and loads(bytes)"
            )
        return _BUILTIN[spec]
    if isinstance(spec, Serializer) and isinstance(getattr(spec, "name", None), str):
        return spec
    raise TypeError(
        f"serializer must be 'auto', 'pickle', 'torch' or an object with name, dumps and loads, "
        f"got {spec!r}"
    )


@dataclass
class CacheStats:
    """Counters of one Cache object (this process), plus the bytes now on disk."""

    hits: int = 0
    misses: int = 0
    writes: int = 0
    evictions: int = 0
    corrupt: int = 0
    bytes: int = 0
    seconds_saved: float = 0.0


@dataclass
class CachedValue:
    """An output served from the cache, with the compute record of the run that stored it."""

    value: Any
    seconds: float
    cost: float
    load_seconds: float
    prefix_seconds: float = 0.0
    prefix_cost: float = 0.0
    own_cost: bool = False  # the stage reported its cost in its own units (not wall seconds)


class _CorruptEntry(Exception):
    pass


def default_key_file() -> Path:
    """Where the signing key lives unless a Cache is given one: ``$METATUNE_CACHE_KEY_FILE``,
    else ``metatune/cache.key`` under ``$XDG_CONFIG_HOME`` (default ``~/.config``)."""
    env = os.environ.get(KEY_FILE_ENV)
    if env:
        return Path(env).expanduser().resolve()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return (Path(base) / "metatune" / "cache.key").resolve()


def _read_or_create_key(path: Path) -> bytes:
    """The key in `path`; a new random one, written with mode 0600, if the file is missing."""
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first
            text = path.read_text().strip()
        else:
            text = os.urandom(32).hex()
            with os.fdopen(fd, "w") as f:
                f.write(text + "\n")
    except OSError as exc:
        raise ValueError(f"cannot read the cache key file {str(path)!r}: {exc}") from exc
    if len(text) < 32:
        raise ValueError(
            f"the cache key file {str(path)!r} holds {len(text)} characters; a key needs at "
            "least 32 (delete the file to have a new one made)"
        )
    return text.encode()


def _entry_tag(key: bytes, name: str, *signed: bytes | memoryview) -> bytes:
    """The HMAC of an entry's header and payload (given in one or more pieces, so a large
    payload is not copied to be joined), bound to its file name (so an entry copied under
    another key's name does not verify)."""
    mac = hmac.new(key, _MAGIC + name.encode() + b"\0", hashlib.sha256)
    for part in signed:
        mac.update(part)
    return mac.digest()


def _writer_token() -> str:
    """This process's identity in a temp file's name, so an abandoned one can be told apart."""
    host, pid, boot, pidns, start = process_identity().split(":")
    return f"{pid}_{start}_{pidns}_{boot.replace('-', '')}"  # no "-": it ends the token


def _abandoned(name: str) -> bool:
    """True if the temp file `name` was being written by a process of this machine that is gone."""
    token = name[len(_TMP_PREFIX) :].split("-", 1)[0]
    parts = token.split("_")
    if len(parts) != 4:
        return False
    pid, start, pidns, boot = parts
    host, _, my_boot, _, _ = process_identity().split(":")
    if boot != my_boot.replace("-", ""):
        return False  # written on another machine or before a reboot: left to the age rule
    return identity_is_dead(f"{host}:{pid}:{my_boot}:{pidns}:{start}")


class Cache:
    """Stage outputs in `folder` (created on first write); `max_bytes` caps its size (LRU)."""

    def __init__(
        self,
        folder: str | os.PathLike[str] | None = None,
        max_bytes: int | None = None,
        key: bytes | str | os.PathLike[str] | None = None,
    ):
        if folder is None:
            folder = DEFAULT_CACHE_DIR
        if not isinstance(folder, (str, os.PathLike)):
            raise TypeError(f"cache folder must be a path, got {folder!r}")
        if max_bytes is not None and (
            isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0
        ):
            raise ValueError(f"max_bytes must be a positive integer or None, got {max_bytes!r}")
        self.folder = Path(folder).expanduser().resolve()
        self.max_bytes = max_bytes
        if key is not None and not isinstance(key, (bytes, str, os.PathLike)):
            raise TypeError(f"key must be bytes, a key file path or None, got {key!r}")
        if isinstance(key, bytes) and len(key) < 16:
            raise ValueError(f"a cache key must have at least 16 bytes, got {len(key)}")
        self._key_spec = key
        self._key: bytes | None = key if isinstance(key, bytes) else None
        if not isinstance(key, bytes):
            key_file = default_key_file() if key is None else Path(key).expanduser().resolve()
            if key_file.is_relative_to(self.folder):
                raise ValueError(
                    f"the cache key file {str(key_file)!r} must not be inside the cache folder "
                    f"{str(self.folder)!r}: whoever can write entries could then sign them"
                )
            self._key_file: Path | None = key_file
        else:
            self._key_file = None
        self._stats = CacheStats()
        self._lock = threading.Lock()
        self._last_touch = 0

    def __repr__(self) -> str:
        return f"Cache({str(self.folder)!r}, max_bytes={self.max_bytes})"

    def __getstate__(self) -> dict[str, Any]:
        """What a copy sent to a worker process or node carries: the folder, the size cap and
        the key as it was given (bytes, or the key file's path, which the worker reads
        itself); not the lock, this process's counters, or a key read from the default file."""
        state = self.__dict__.copy()
        del state["_lock"]
        state["_stats"] = CacheStats()
        if not isinstance(self._key_spec, bytes):
            state["_key"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _signing_key(self) -> bytes:
        if self._key is None:
            assert self._key_file is not None
            self._key = _read_or_create_key(self._key_file)
        return self._key

    # Paths ------------------------------------------------------------------------------------
    def _path(self, key: str) -> Path:
        if not key or not all(c in "0123456789abcdef" for c in key):
            raise ValueError(f"cache keys are lowercase hex digests, got {key!r}")
        return self.folder / f"{key}{_SUFFIX}"

    def _entries(self) -> list[tuple[Path, os.stat_result]]:
        return self._scan()[0]

    def _scan(self) -> tuple[list[tuple[Path, os.stat_result]], int]:
        """The entries, and the bytes of temp files still being written. Temp files left by a
        writer that died are deleted: at once when it was a process of this machine, else
        after an hour."""
        out: list[tuple[Path, os.stat_result]] = []
        pending = 0
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return out, pending
        for name in names:
            path = self.folder / name
            try:
                st = path.stat()
            except FileNotFoundError:  # evicted by another process meanwhile
                continue
            if name.endswith(_SUFFIX):
                out.append((path, st))
            elif name.startswith(_TMP_PREFIX):
                if _abandoned(name) or time.time() - st.st_mtime > _STALE_TMP_SECONDS:
                    _unlink(path)
                else:
                    pending += st.st_size
        return out, pending

    def _touch(self, path: Path) -> None:
        # Strictly increasing within this process, so LRU order is exact even on a fast clock.
        with self._lock:
            now = max(time.time_ns(), self._last_touch + 1)
            self._last_touch = now
        with contextlib.suppress(OSError):
            os.utime(path, ns=(now, now))

    # Public API -------------------------------------------------------------------------------
    def contains(self, key: str) -> bool:
        """True if an entry for `key` exists (it may still turn out unreadable on `get`)."""
        return self._path(key).is_file()

    __contains__ = contains

    def get(self, key: str, serializer: Serializer | None = None) -> CachedValue | None:
        """The stored output for `key`, or None. An entry that is damaged (bad format, header or
        checksum) is deleted, unless another process has replaced it meanwhile; one that is
        intact but does not load here (a class missing from this worker, CUDA tensors on a CPU
        machine) is left for others. Both count as corrupt, not as misses: the caller
        recomputes and records the miss."""
        path = self._path(key)
        start = time.perf_counter()
        try:
            with open(path, "rb") as f:
                opened = os.fstat(f.fileno())
                data = f.read()
        except OSError:  # gone (evicted meanwhile) or not readable by this user
            self._stats.misses += 1
            return None
        try:
            header, payload = _parse(data, self._signing_key(), path.name)
            seconds = float(header.get("seconds", 0.0))
            cost = float(header.get("cost", seconds))
            prefix_seconds = float(header.get("prefix_seconds", seconds))
            prefix_cost = float(header.get("prefix_cost", cost))
            own_cost = bool(header.get("own_cost", False))
            name = header.get("serializer")
            if not (serializer is not None and serializer.name == name) and name not in _BUILTIN:
                raise _CorruptEntry(f"unknown serializer {name!r}")
        except (_CorruptEntry, ValueError, TypeError, KeyError, AttributeError, RecursionError):
            if _same_file(path, opened):
                _unlink(path)
            self._stats.corrupt += 1
            return None
        try:
            if serializer is not None and serializer.name == name:
                value = serializer.loads(bytes(payload))
            else:
                value = _BUILTIN[name].loads(payload)
        except Exception:  # intact bytes that do not load in this process
            self._stats.corrupt += 1
            return None
        self._touch(path)
        self._stats.hits += 1
        self._stats.seconds_saved += prefix_seconds
        return CachedValue(
            value=value,
            seconds=seconds,
            cost=cost,
            load_seconds=time.perf_counter() - start,
            prefix_seconds=prefix_seconds,
            prefix_cost=prefix_cost,
            own_cost=own_cost,
        )

    def record_miss(self) -> None:
        """Count an output that had to be computed because it was not in the cache."""
        self._stats.misses += 1

    def put(
        self,
        key: str,
        value: Any,
        *,
        serializer: str | Serializer | None = None,
        seconds: float = 0.0,
        cost: float | None = None,
        prefix_seconds: float | None = None,
        prefix_cost: float | None = None,
        label: str = "",
        own_cost: bool = False,
    ) -> int:
        """Store `value` under `key` atomically; returns the bytes written (0 if not stored).

        `seconds` and `cost` record what computing it took; `prefix_seconds` / `prefix_cost`
        what computing it from scratch took (with every earlier stage; default: the same), which
        later hits report as saved; `own_cost` says the stage reported `cost` in its own units.
        An entry larger than `max_bytes` is not stored.
        """
        path = self._path(key)
        ser = get_serializer(serializer, value)
        payload = ser.dumps(value)
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise TypeError(f"serializer {ser.name!r} must return bytes from dumps()")
        header = json.dumps(
            {
                "serializer": ser.name,
                "length": len(payload),
                "seconds": float(seconds),
                "cost": float(seconds if cost is None else cost),
                "prefix_seconds": float(seconds if prefix_seconds is None else prefix_seconds),
                "prefix_cost": float(
                    (seconds if cost is None else cost) if prefix_cost is None else prefix_cost
                ),
                "label": label,
                "own_cost": bool(own_cost),
                "created": time.time(),
            },
            sort_keys=True,
        ).encode()
        size = len(_MAGIC) + _TAG_BYTES + 4 + len(header) + len(payload)
        if self.max_bytes is not None and size > self.max_bytes:
            return 0
        length = struct.pack("<I", len(header))
        tag = _entry_tag(self._signing_key(), path.name, length, header, payload)
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{_writer_token()}-", dir=self.folder)
        try:
            if hasattr(os, "fchmod"):  # mkstemp makes 0600; a shared cache must be readable
                os.fchmod(fd, 0o666 & ~_UMASK)
            with os.fdopen(fd, "wb") as f:
                f.write(_MAGIC)
                f.write(tag)
                f.write(length)
                f.write(header)
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            _unlink(Path(tmp))
            raise
        self._touch(path)
        self._stats.writes += 1
        if self.max_bytes is not None:
            self.evict(keep=path)
        return size

    def evict(self, keep: Path | None = None) -> int:
        """Delete least recently used entries until the folder fits `max_bytes`; returns count."""
        if self.max_bytes is None:
            return 0
        entries, pending = self._scan()
        total = pending + sum(st.st_size for _, st in entries)  # writes under way take room too
        removed = 0
        for path, st in sorted(entries, key=lambda e: e[1].st_mtime_ns):
            if total <= self.max_bytes:
                break
            if path == keep:
                continue
            if _unlink(path):
                removed += 1
            elif path.exists():  # could not delete it (permissions): it still takes room
                continue
            total -= st.st_size
        self._stats.evictions += removed
        return removed

    def delete(self, key: str) -> bool:
        """Remove the entry for `key`, if any."""
        return _unlink(self._path(key))

    def clear(self) -> None:
        """Remove every entry (and leftover temp files) from the folder."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return
        for name in names:
            if name.endswith(_SUFFIX) or name.startswith(_TMP_PREFIX):
                _unlink(self.folder / name)

    def size_bytes(self) -> int:
        """Bytes used by the entries now in the folder, and by writes under way."""
        entries, pending = self._scan()
        return pending + sum(st.st_size for _, st in entries)

    def __len__(self) -> int:
        return len(self._entries())

    @property
    def stats(self) -> CacheStats:
        """Hits, misses, writes, evictions, corrupt entries and seconds saved by this object."""
        s = self._stats
        return CacheStats(
            hits=s.hits,
            misses=s.misses,
            writes=s.writes,
            evictions=s.evictions,
            corrupt=s.corrupt,
            bytes=self.size_bytes(),
            seconds_saved=s.seconds_saved,
        )


def _parse(data: bytes, key: bytes, name: str) -> tuple[dict[str, Any], memoryview]:
    """Header and payload of an entry, after checking its tag; _CorruptEntry if anything is off
    (nothing of an entry is parsed before its tag checks out)."""
    start = len(_MAGIC) + _TAG_BYTES
    head = start + 4
    if len(data) < head or data[: len(_MAGIC)] != _MAGIC:
        raise _CorruptEntry("bad magic")
    (n,) = struct.unpack("<I", data[start:head])
    if n > _MAX_HEADER_BYTES or len(data) < head + n:
        raise _CorruptEntry("truncated or oversized header")
    view = memoryview(data)
    if not hmac.compare_digest(
        _entry_tag(key, name, view[start:]), bytes(view[len(_MAGIC) : start])
    ):
        raise _CorruptEntry("bad signature: not written with this cache's key")
    header = json.loads(data[head : head + n])
    if not isinstance(header, dict):
        raise _CorruptEntry("header is not an object")
    payload = view[head + n :]  # no copy of a large payload
    if len(payload) != header["length"]:
        raise _CorruptEntry("payload length mismatch")
    return header, payload


def _same_file(path: Path, opened: os.stat_result) -> bool:
    """True if `path` is still the file that was opened (not replaced by another writer)."""
    try:
        now = path.stat()
    except OSError:
        return False
    return (now.st_ino, now.st_dev, now.st_mtime_ns) == (
        opened.st_ino,
        opened.st_dev,
        opened.st_mtime_ns,
    )


def _unlink(path: Path) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
    except OSError:
        return False
