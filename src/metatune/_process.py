"""Who a process is, in a form that stays unique across hosts, reboots and PID namespaces.

Storage records the owner of each running trial and the cache names its temp files after their
writer, so that work left by a dead process can be cleaned up. A bare ``host:pid`` is not enough:
two containers with host networking share a host name but not a PID namespace, and PIDs are
reused. An identity is ``host:pid:boot:pidns:start`` (boot id, PID-namespace inode and the
process's start time in clock ticks); a process is judged dead only when the identity provably
names a process that no longer runs, else only a missed heartbeat fails its trial.
"""

from __future__ import annotations

import functools
import os
import socket

__all__ = ["process_identity", "identity_is_dead"]


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


@functools.lru_cache(maxsize=1)
def _machine() -> tuple[str, str, str]:
    host = socket.gethostname()[:100].replace(":", "_")
    boot = _read("/proc/sys/kernel/random/boot_id") or "-"
    try:
        pidns = os.readlink("/proc/self/ns/pid").rpartition("[")[2].rstrip("]") or "-"
    except OSError:
        pidns = "-"
    return host, boot, pidns


def _stat_fields(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (after the command name), or None if unreadable."""
    text = _read(f"/proc/{pid}/stat")
    if not text or ")" not in text:
        return None
    return text.rsplit(")", 1)[1].split()


def _start_time(pid: int) -> str:
    fields = _stat_fields(pid)
    return fields[19] if fields and len(fields) > 19 else "-"  # field 22: starttime


def process_identity(pid: int | None = None) -> str:
    """This process's identity (or that of `pid` on this machine)."""
    pid = os.getpid() if pid is None else pid
    host, boot, pidns = _machine()
    return f"{host}:{pid}:{boot}:{pidns}:{_start_time(pid)}"


def identity_is_dead(identity: str | None) -> bool:
    """True only when `identity` names a process of this machine and PID namespace that no
    longer runs (gone, a zombie, or its PID reused by a later process)."""
    if not identity:
        return False
    parts = identity.split(":")
    if len(parts) != 5 or not parts[1].isdigit():
        return False  # another format (e.g. an older "host:pid"): not provably dead
    host, pid_text, boot, pidns, start = parts
    if (host, boot, pidns) != _machine() or "-" in (boot, pidns, start):
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # exists, owned by someone else: look at /proc
    fields = _stat_fields(pid)
    if fields is None:
        return not os.path.exists(f"/proc/{pid}")
    if fields[0] == "Z":  # a zombie child still answers kill(0)
        return True
    return len(fields) > 19 and fields[19] != start  # the PID now belongs to another process
