"""The stage-output cache: atomic entries, LRU size limit, corruption, concurrent writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from metatune.pipeline.cache import Cache, get_serializer

KEY = "ab" * 32


def _key(i: int) -> str:
    return f"{i:064x}"


def test_put_get_roundtrip_and_stats(tmp_path):
    cache = Cache(tmp_path / "c")
    assert not (tmp_path / "c").exists()  # created on first write
    assert cache.get(KEY) is None
    size = cache.put(KEY, {"a": [1, 2.5]}, seconds=3.0, cost=7.0, label="prep")
    assert size > 0 and cache.contains(KEY) and KEY in cache
    got = cache.get(KEY)
    assert got is not None and got.value == {"a": [1, 2.5]}
    assert got.seconds == 3.0 and got.cost == 7.0 and got.load_seconds >= 0
    s = cache.stats
    assert (s.hits, s.misses, s.writes) == (1, 1, 1)
    assert s.seconds_saved == 3.0 and s.bytes == size == cache.size_bytes()
    assert len(cache) == 1
    cache.clear()
    assert len(cache) == 0 and cache.get(KEY) is None


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="max_bytes"):
        Cache(tmp_path, max_bytes=0)
    with pytest.raises(TypeError, match="cache folder"):
        Cache(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hex"):
        Cache(tmp_path).get("../etc/passwd")
    with pytest.raises(ValueError, match="unknown serializer"):
        get_serializer("json")


def test_torch_outputs_use_torch_save(tmp_path):
    cache = Cache(tmp_path)
    model = torch.nn.Linear(3, 2)
    cache.put(KEY, {"model": model, "x": torch.arange(4.0)})
    header = (tmp_path / f"{KEY}.entry").read_bytes()[:400]
    assert b'"serializer": "torch"' in header
    got = cache.get(KEY)
    assert got is not None
    assert torch.equal(got.value["x"], torch.arange(4.0))
    assert torch.equal(got.value["model"].weight, model.weight)
    assert get_serializer(None, [1, 2]).name == "pickle"


def test_custom_serializer(tmp_path):
    class Upper:
        name = "upper"

        def dumps(self, obj):
            return obj.upper().encode()

        def loads(self, data):
            return data.decode().lower()

    cache = Cache(tmp_path)
    cache.put(KEY, "hello", serializer=Upper())
    assert cache.get(KEY, Upper()).value == "hello"
    # Without the serializer that wrote it the entry is unreadable: deleted, never a crash.
    assert cache.get(KEY) is None and not cache.contains(KEY)


def test_lru_eviction_keeps_the_size_limit(tmp_path):
    blob = os.urandom(10_000)
    cache = Cache(tmp_path, max_bytes=35_000)
    for i in range(3):
        cache.put(_key(i), blob)
    assert len(cache) == 3
    assert cache.get(_key(0)) is not None  # 0 is now more recent than 1
    cache.put(_key(3), blob)
    assert cache.size_bytes() <= 35_000
    assert [cache.contains(_key(i)) for i in range(4)] == [True, False, True, True]
    for i in range(4, 10):
        cache.put(_key(i), blob)
        assert cache.size_bytes() <= 35_000
    assert cache.contains(_key(9)) and cache.stats.evictions == 7
    # An entry bigger than the whole limit is not stored at all.
    assert cache.put(_key(99), os.urandom(40_000)) == 0 and not cache.contains(_key(99))


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty"])
def test_corrupt_entry_is_deleted_and_reported_missing(tmp_path, damage):
    cache = Cache(tmp_path)
    cache.put(KEY, list(range(1000)))
    path = tmp_path / f"{KEY}.entry"
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        path.write_bytes(data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:])
    elif damage == "garbage":
        path.write_bytes(b"not a cache entry at all")
    else:
        path.write_bytes(b"")
    assert cache.get(KEY) is None
    assert not path.exists() and cache.stats.corrupt == 1
    cache.put(KEY, [1])
    assert cache.get(KEY).value == [1]


_SLOW_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from metatune.pipeline import cache as cache_mod

    folder, key, marker = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    real_fdopen = os.fdopen

    class SlowFile:
        def __init__(self, f):
            self.f = f
        def write(self, data):
            view = memoryview(data)
            for i in range(0, len(view), 1 << 16):  # write in chunks, then stall mid-file
                self.f.write(view[i : i + (1 << 16)])
                self.f.flush()
                if i >= 1 << 20:
                    marker.touch()
                    time.sleep(60)
            return len(data)
        def flush(self):
            self.f.flush()
        def fileno(self):
            return self.f.fileno()
        def __enter__(self):
            return self
        def __exit__(self, *a):
            self.f.close()

    cache_mod.os.fdopen = lambda fd, mode: SlowFile(real_fdopen(fd, mode))
    cache_mod.Cache(folder).put(key, os.urandom(8 << 20))
    """
)


def test_a_writer_killed_mid_write_leaves_no_readable_entry(tmp_path):
    marker = tmp_path / "stalled"
    folder = tmp_path / "cache"
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_WRITER, str(folder), KEY, str(marker)],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the writer never reached the middle of its write"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    leftovers = [p.name for p in folder.iterdir()]
    assert leftovers and all(n.startswith(".tmp-") for n in leftovers)  # only the partial temp
    assert (folder / leftovers[0]).stat().st_size > 1 << 20
    cache = Cache(folder)
    assert not cache.contains(KEY) and cache.get(KEY) is None and len(cache) == 0
    cache.put(KEY, b"fresh")
    assert cache.get(KEY).value == b"fresh"
    # An old leftover temp file is removed when the folder is next scanned.
    old = time.time() - 2 * 3600
    if (folder / leftovers[0]).exists():  # its writer is dead: already swept by the first scan
        os.utime(folder / leftovers[0], (old, old))
    cache.size_bytes()
    assert not (folder / leftovers[0]).exists()


_RACER = textwrap.dedent(
    """
    import sys
    from metatune.pipeline.cache import Cache
    folder, key, tag = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cache = Cache(folder)
    for i in range(25):
        cache.put(key, {"tag": tag, "i": i, "blob": bytes([tag]) * 200_000})
    """
)


def test_two_processes_writing_the_same_key(tmp_path: Path):
    folder = tmp_path / "cache"
    procs = [
        subprocess.Popen([sys.executable, "-c", _RACER, str(folder), KEY, str(tag)])
        for tag in (1, 2)
    ]
    cache = Cache(folder)
    reads = 0
    while any(p.poll() is None for p in procs):
        got = cache.get(KEY)
        if got is not None:
            reads += 1
            v = got.value
            assert v["blob"] == bytes([v["tag"]]) * 200_000  # always a complete entry
    assert all(p.wait() == 0 for p in procs)
    assert cache.stats.corrupt == 0
    final = cache.get(KEY)
    assert final is not None and final.value["i"] == 24
    assert [p.name for p in folder.iterdir()] == [f"{KEY}.entry"]


def test_a_header_with_bad_values_is_recomputed_not_a_crash(tmp_path):
    import json
    import struct

    cache = Cache(tmp_path)
    cache.put(KEY, [1, 2])
    from metatune.pipeline import cache as cache_mod

    path = tmp_path / f"{KEY}.entry"
    data = path.read_bytes()
    start = len(cache_mod._MAGIC) + cache_mod._TAG_BYTES
    head = start + 4
    (n,) = struct.unpack("<I", data[start:head])
    header = json.loads(data[head : head + n])
    header["seconds"] = None
    new = json.dumps(header).encode()
    signed = struct.pack("<I", len(new)) + new + data[head + n :]  # re-signed with our key
    tag = cache_mod._entry_tag(cache._signing_key(), path.name, signed)
    path.write_bytes(data[: len(cache_mod._MAGIC)] + tag + signed)
    assert cache.get(KEY) is None
    assert cache.stats.corrupt == 1 and not path.exists()


def test_an_intact_entry_that_does_not_load_here_is_kept(tmp_path):
    class NotReallyPickle:  # writes bytes that pickle cannot load, under pickle's name
        name = "pickle"

        def dumps(self, obj):
            return b"written by another version"

        def loads(self, data):
            raise AssertionError("not used")

    cache = Cache(tmp_path)
    cache.put(KEY, [1], serializer=NotReallyPickle())
    assert cache.get(KEY) is None and cache.stats.corrupt == 1
    assert (tmp_path / f"{KEY}.entry").exists()  # another worker may load it


def test_a_damaged_entry_replaced_meanwhile_is_not_deleted(tmp_path, monkeypatch):
    from metatune.pipeline import cache as cache_mod

    cache = Cache(tmp_path)
    cache.put(KEY, [1])
    path = tmp_path / f"{KEY}.entry"
    path.write_bytes(b"damaged")
    real_parse = cache_mod._parse

    def parse_while_another_process_writes(*args):
        Cache(tmp_path).put(KEY, [2])  # os.replace: a new file under the same name
        return real_parse(*args)

    monkeypatch.setattr(cache_mod, "_parse", parse_while_another_process_writes)
    assert cache.get(KEY) is None
    monkeypatch.setattr(cache_mod, "_parse", real_parse)
    assert cache.get(KEY).value == [2]


def test_entries_are_readable_by_the_group_and_others_as_umask_allows(tmp_path):
    from metatune.pipeline import cache as cache_mod

    if not hasattr(os, "fchmod"):
        pytest.skip("no POSIX modes here")
    Cache(tmp_path).put(KEY, [1])
    mode = (tmp_path / f"{KEY}.entry").stat().st_mode & 0o777
    assert mode == 0o666 & ~cache_mod._UMASK


def test_eviction_goes_on_past_an_entry_it_cannot_delete(tmp_path, monkeypatch):
    from metatune.pipeline import cache as cache_mod

    cache = Cache(tmp_path)
    for i in range(5):
        cache.put(_key(i), os.urandom(10_000))
    stuck = tmp_path / f"{_key(0)}.entry"  # the least recently used one
    real_unlink = cache_mod._unlink
    monkeypatch.setattr(cache_mod, "_unlink", lambda p: False if p == stuck else real_unlink(p))
    cache.max_bytes = 25_000
    cache.evict()
    assert stuck.exists() and cache.size_bytes() <= 25_000
