"""The cache loads only entries signed with this user's key; hostile files are misses."""

from __future__ import annotations

import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from metatune.pipeline import Cache
from metatune.pipeline import cache as cache_mod

KEY = "ab" * 32


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def _planted_entry(path: Path, payload: bytes, header: bytes | None = None) -> None:
    """An entry in the cache's format, signed with a key that is not the cache's."""
    header = header or (b'{"serializer": "pickle", "length": %d, "seconds": 0.0}' % len(payload))
    signed = struct.pack("<I", len(header)) + header + payload
    tag = cache_mod._entry_tag(b"attacker" * 4, path.name, signed)
    path.write_bytes(cache_mod._MAGIC + tag + signed)


def test_a_planted_entry_is_a_miss_not_code(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "metatune-runs" / "cache"
    folder.mkdir(parents=True)
    _planted_entry(folder / f"{KEY}.entry", pickle.dumps(_Boom()))
    cache = Cache(folder)
    assert cache.get(KEY) is None and cache.stats.corrupt == 1
    assert not (tmp_path / "PWNED").exists()
    assert not (folder / f"{KEY}.entry").exists()  # removed: a later put writes ours


def test_an_entry_copied_under_another_name_does_not_verify(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    cache.put(KEY, [1, 2, 3])
    other = "cd" * 32
    (tmp_path / "c" / f"{other}.entry").write_bytes((tmp_path / "c" / f"{KEY}.entry").read_bytes())
    assert cache.get(other) is None
    assert cache.get(KEY).value == [1, 2, 3]


def test_the_key_is_made_once_outside_the_folder_with_mode_0600(
    tmp_path: Path, monkeypatch
) -> None:
    key_file = tmp_path / "config" / "metatune" / "cache.key"
    monkeypatch.setenv(cache_mod.KEY_FILE_ENV, str(key_file))
    cache = Cache(tmp_path / "c")
    assert not key_file.exists()  # made on first use, not by merely creating a Cache
    cache.put(KEY, "v")
    assert key_file.stat().st_mode & 0o777 == 0o600
    first = key_file.read_text()
    assert Cache(tmp_path / "c").get(KEY).value == "v" and key_file.read_text() == first
    with pytest.raises(ValueError, match="must not be inside the cache folder"):
        Cache(tmp_path / "c", key=tmp_path / "c" / "k")


def test_sharing_a_cache_means_sharing_its_key(tmp_path: Path) -> None:
    team = tmp_path / "team.key"
    team.write_text("0123456789abcdef" * 4)
    Cache(tmp_path / "c", key=team).put(KEY, "shared")
    assert Cache(tmp_path / "c", key=team).get(KEY).value == "shared"
    assert Cache(tmp_path / "c", key=b"another key, 16+ bytes").get(KEY) is None
    with pytest.raises(ValueError, match="at least 16 bytes"):
        Cache(tmp_path / "c", key=b"short")


def test_a_deeply_nested_header_is_corrupt_not_a_crash(tmp_path: Path) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    path = folder / f"{KEY}.entry"
    _planted_entry(path, b"x", header=b"[" * 100_000 + b"]" * 100_000)
    cache = Cache(folder)
    assert cache.get(KEY) is None and not path.exists()
    # Even one signed with our key: a header over the size bound is not parsed.
    header = b"[" * 40_000 + b"]" * 40_000
    signed = struct.pack("<I", len(header)) + header
    tag = cache_mod._entry_tag(cache._signing_key(), path.name, signed)
    path.write_bytes(cache_mod._MAGIC + tag + signed)
    assert cache.get(KEY) is None and not path.exists()


def test_temp_files_count_toward_the_limit_and_a_dead_writers_go_at_once(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "c"
    folder.mkdir()
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "from metatune.pipeline.cache import _writer_token; print(_writer_token())",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    dead = folder / f".tmp-{child}-abc123"
    dead.write_bytes(b"\0" * 50_000)
    alive = folder / f".tmp-{cache_mod._writer_token()}-def456"
    alive.write_bytes(b"\0" * 30_000)
    cache = Cache(folder, max_bytes=40_000)
    assert cache.size_bytes() == 30_000  # the dead writer's file is gone, ours still counts
    assert not dead.exists() and alive.exists()
    cache.put("cd" * 32, os.urandom(5_000))
    cache.put(KEY, os.urandom(8_000))  # 30k under way + 13k of entries: the older one goes
    assert not (folder / f"{'cd' * 32}.entry").exists() and cache.get(KEY) is not None
