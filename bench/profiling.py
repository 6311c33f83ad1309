"""Sampling profiles of service processes under load, with py-spy (`--profile`).

`py-spy record --format raw` writes collapsed stacks ("frame;frame;leaf count"); the
summary ranks functions by self time (the leaf frame: where the CPU actually was) and by
inclusive time (anywhere on the stack), which is what docs/performance.md quotes.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import procs
from bench.procs import Proc

_LINE = re.compile(r"^(?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$")


def py_spy() -> str | None:
    found = procs.BIN / "py-spy"
    return str(found) if found.exists() else shutil.which("py-spy")


def _label(frame: str) -> str:
    """`func (path/to/module.py:12)` -> `func (to/module.py)`: one entry per function."""
    m = _FRAME.match(frame)
    if not m:
        return frame
    parts = Path(m["file"]).parts
    return f"{m['func']} ({'/'.join(parts[-2:])})"


def _package(frame: str) -> str:
    """The library a frame belongs to: `httpx`, `asyncio`, `litestar`, `forwarder`..."""
    m = _FRAME.match(frame)
    if not m:
        return "?"
    first = m["file"].split("/", 1)[0]
    return first.removesuffix(".py")


def summarize(raw: Path, top: int = 12) -> dict[str, Any]:
    """Top functions by self and by inclusive share of all samples; self time by library."""
    self_time: Counter[str] = Counter()
    total_time: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        count = int(m["count"])
        raw_frames = [f for f in m["stack"].split(";") if f]
        frames = [_label(f) for f in raw_frames]
        if not frames:
            continue
        samples += count
        by_package[_package(raw_frames[-1])] += count
        self_time[frames[-1]] += count
        for label in set(frames):
            total_time[label] += count

    def ranked(counter: Counter[str]) -> list[tuple[str, float]]:
        return [(k, round(100 * v / samples, 1)) for k, v in counter.most_common(top)]

    return {
        "samples": samples,
        "self": ranked(self_time),
        "total": ranked(total_time),
        "packages": ranked(by_package),
    }


class Profiles:
    """Collects one raw profile per profiled process during a run."""

    def __init__(self, out_dir: Path | None) -> None:
        self.out_dir = out_dir
        self.files: dict[str, Path] = {}

    @property
    def enabled(self) -> bool:
        return self.out_dir is not None

    @contextlib.contextmanager
    def record(self, name: str, proc: Proc, max_seconds: float = 120.0) -> Iterator[None]:
        """Sample `proc` for the duration of the block (no-op unless profiling is on)."""
        binary = py_spy()
        if self.out_dir is None or binary is None:
            yield
            return
        out = self.out_dir / f"{name}.pyspy.txt"
        cmd = [binary, "record", "--pid", str(proc.pid), "--format", "raw", "--output", str(out)]
        cmd += ["--rate", "200", "--duration", str(int(max_seconds)), "--nonblocking"]
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)  # py-spy writes what it has on Ctrl-C
            try:
                spy.wait(15)
            except subprocess.TimeoutExpired:
                spy.kill()
            if out.exists():
                self.files[name] = out

    def summaries(self) -> dict[str, dict[str, Any]]:
        return {name: summarize(path) for name, path in self.files.items()}
