"""The processes of a server under test, from /proc: its process tree, RSS, peak RSS (``VmHWM``) and CPU time,
and a sampler of the tree's summed RSS. Linux only."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

SAMPLE_INTERVAL = 0.1
"""Seconds between two RSS samples of the server's process tree."""


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    role: str
    rss: int  # bytes
    hwm: int  # bytes
    cpu: float  # seconds (user + system)


_TICK = os.sysconf("SC_CLK_TCK")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except OSError:
        return None


def _parents() -> dict[int, int]:
    """Every process's parent, from /proc/<pid>/stat (``/proc/<pid>/task/*/children`` is not always there)."""
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _read(f"/proc/{entry}/stat")) is not None:
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return sorted(tree)


def _role(pid: int, root: int) -> str:
    cmdline = (_read(f"/proc/{pid}/cmdline") or "").replace("\0", " ")
    if pid == root:
        return "server" if "--workers 1 " in cmdline + " " else "supervisor"
    if "multiprocessing.spawn" in cmdline:
        return "worker"
    if "resource_tracker" in cmdline:
        return "resource tracker"
    return cmdline[:40] or "?"


def process_info(pid: int, root: int) -> ProcessInfo | None:
    """RSS, peak RSS and CPU time of ``pid`` (None when it is gone)."""
    status, stat = _read(f"/proc/{pid}/status"), _read(f"/proc/{pid}/stat")
    if status is None or stat is None:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)

    def kib(name: str) -> int:
        return int(fields.get(name, "0 kB").split()[0]) * 1024

    times = stat.rsplit(")", 1)[1].split()
    return ProcessInfo(pid, _role(pid, root), kib("VmRSS"), kib("VmHWM"), (int(times[11]) + int(times[12])) / _TICK)


def rss(pid: int) -> int:
    """``VmRSS`` of ``pid`` in bytes (0 when it is gone)."""
    for line in (_read(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def tree_info(root: int) -> list[ProcessInfo]:
    return [info for pid in process_tree(root) if (info := process_info(pid, root)) is not None]


class RssSampler(threading.Thread):
    """Samples the summed ``VmRSS`` of a process tree every :data:`SAMPLE_INTERVAL` seconds until stopped.

    A sample reads only the known processes' /proc/<pid>/status; the tree itself (a scan of every
    /proc/<pid>/stat) is looked up again every :data:`TREE_EVERY` samples, to see a restarted worker.
    """

    TREE_EVERY = 10

    def __init__(self, root: int) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.root = root
        self.samples: list[int] = []
        self.pids: list[int] = []
        self._done = threading.Event()

    def sample(self) -> None:
        if len(self.samples) % self.TREE_EVERY == 0:
            self.pids = process_tree(self.root)
        self.samples.append(sum(rss(pid) for pid in self.pids))

    def run(self) -> None:
        while not self._done.wait(SAMPLE_INTERVAL):
            self.sample()

    def stop(self) -> None:
        self._done.set()
        self.join()

