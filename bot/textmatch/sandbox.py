"""The regex sandbox: a helper process (our own interpreter, `-c` with fixed source) that
runs regex searches and is killed when a batch overruns its time limit.

A worker *thread* cannot be interrupted and, since `re` holds the GIL while it backtracks,
would freeze the event loop too; a process can be killed and restarted.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

REGEX_FLAGS = re.IGNORECASE  # every blocked regex is compiled with these


class RegexTimeout(Exception):
    """The regexes did not finish in time; the helper process was killed."""


class SandboxError(Exception):
    """The helper process failed in an unexpected way."""


@dataclass(frozen=True)
class SandboxResult:
    hit: tuple[int, int, int, int] | None  # (pattern index, text index, start, end)
    slowest: float  # seconds, slowest single search


_WORKER_SOURCE = r"""
import json, re, select, sys, time
IDLE = float(sys.argv[1])
FLAGS = int(sys.argv[2])
cache = {}
stdin = sys.stdin.buffer
while True:
    ready, _, _ = select.select([stdin], [], [], IDLE)
    if not ready:
        break
    line = stdin.readline()
    if not line:
        break
    req = json.loads(line)
    hit = None
    slowest = 0.0
    try:
        for pi, pattern in enumerate(req["patterns"]):
            rx = cache.get(pattern)
            if rx is None:
                if len(cache) > 2000:
                    cache.clear()
                rx = cache[pattern] = re.compile(pattern, FLAGS)
            for ti, text in enumerate(req["texts"]):
                t0 = time.perf_counter()
                m = rx.search(text)
                slowest = max(slowest, time.perf_counter() - t0)
                if req["slow"] is not None and slowest > req["slow"]:
                    raise StopIteration
                if m is not None and hit is None:
                    hit = [pi, ti, m.start(), m.end()]
                    if not req["exhaustive"]:
                        break
            if hit is not None and not req["exhaustive"]:
                break
        reply = {"hit": hit, "slowest": slowest}
    except StopIteration:
        reply = {"hit": hit, "slowest": slowest}
    except Exception as exc:
        reply = {"error": type(exc).__name__}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
"""


@dataclass
class RegexSandbox:
    """A helper process that runs regex searches and is killed when one overruns.

    Started on first use, it exits by itself after `idle_exit_s` without requests and is
    restarted when needed. Thread-safe; calls are serialised. `close()` stops it.
    """

    idle_exit_s: float = 300.0
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    restarts: int = field(default=0, init=False)

    async def search(
        self,
        patterns: Sequence[str],
        texts: Sequence[str],
        *,
        time_limit: float,
        exhaustive: bool = False,
        stop_slower_than: float | None = None,
    ) -> SandboxResult:
        """Search the texts with each pattern in turn; the first hit wins.

        `exhaustive` runs every search even after a hit (to time them all);
        `stop_slower_than` ends the batch as soon as one search took longer than that.
        Raises RegexTimeout when the whole batch overruns `time_limit` (helper killed).
        """
        if not patterns or not texts:
            return SandboxResult(None, 0.0)
        payload = {
            "patterns": list(patterns),
            "texts": list(texts),
            "exhaustive": exhaustive,
            "slow": stop_slower_than,
        }
        request = json.dumps(payload).encode() + b"\n"
        return await asyncio.to_thread(self._call, request, time_limit)

    def _call(self, request: bytes, timeout: float) -> SandboxResult:
        with self._lock:
            for attempt in (1, 2):
                proc = self._ensure()
                try:
                    reply = self._roundtrip(proc, request, timeout)
                except TimeoutError:
                    self._stop()
                    raise RegexTimeout(f"regex search exceeded {timeout:.1f} s") from None
                except (OSError, EOFError, ValueError) as exc:
                    # The helper exited (idle timeout or crash) just before the request.
                    self._stop()
                    if attempt == 2:
                        raise SandboxError(f"regex helper failed: {exc}") from None
                    continue
                if "error" in reply:
                    raise SandboxError(f"regex helper error: {reply['error']}")
                hit = reply["hit"]
                return SandboxResult(
                    tuple(hit) if hit is not None else None, float(reply["slowest"])
                )
        raise SandboxError("unreachable")  # pragma: no cover

    def _ensure(self) -> subprocess.Popen[bytes]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._stop()
        self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed source
            [
                sys.executable,
                "-I",
                "-S",
                "-c",
                _WORKER_SOURCE,
                str(self.idle_exit_s),
                str(int(REGEX_FLAGS)),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.restarts += 1
        return self._proc

    @staticmethod
    def _roundtrip(proc: subprocess.Popen[bytes], request: bytes, timeout: float) -> Any:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(request)
        proc.stdin.flush()
        fd = proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        buffer = b""
        while not buffer.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError("regex helper exited")
            buffer += chunk
        return json.loads(buffer)

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def close(self) -> None:
        with self._lock:
            self._stop()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None


_default: RegexSandbox | None = None
_default_lock = threading.Lock()


def default_sandbox() -> RegexSandbox:
    """The process-wide sandbox (closed at interpreter exit)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = RegexSandbox()
            atexit.register(_default.close)
        return _default
