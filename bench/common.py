"""Shared bench helpers: percentiles, CPU pinning, server processes, the loop-lag probe, a fast HTTP client.

Every time here is ``time.monotonic()`` (CLOCK_MONOTONIC on Linux), which is the same clock in
every process of the machine: a send time taken by the load generator can be compared with a
receive time taken by the socket-client process and with the server's lag-probe samples.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
# The loop-lag probe: bench/serve.py and bench/reference.py read it, never desk/.
LAG_ENV = "DESK_BENCH_LAG_PROBE"
LAG_INTERVAL = 0.005
LAG_SAMPLES_ENV = "DESK_BENCH_LAG_SAMPLES"
HOST = "127.0.0.1"
NICE_ENV = "DESK_BENCH_NICE"
DEFAULT_NICE = -10
SERVER_CPU = 0
CLIENT_CPU = 1


def percentile(values: Sequence[float], q: float) -> float:
    """Return the q-th percentile (0..100) of ``values`` by nearest rank; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100.0 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def summary_ms(values: Sequence[float]) -> dict[str, float]:
    """Return p50/p95/p99/max in milliseconds of durations given in seconds."""
    return {
        "n": len(values),
        "p50": percentile(values, 50) * 1000,
        "p95": percentile(values, 95) * 1000,
        "p99": percentile(values, 99) * 1000,
        "max": (max(values) * 1000) if values else float("nan"),
    }


def free_port() -> int:
    """Return a free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def pin(cpu: int) -> None:
    """Pin the calling process to one CPU when the machine has more than one, and raise its priority."""
    if (os.cpu_count() or 1) > 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    prioritise()


def prioritise() -> int:
    """Raise the calling process's priority to ``nice`` NICE (when allowed); return the nice value in force.

    The machines this runs on are shared (other test runs); a higher priority keeps the figures
    about Desk rather than about the neighbours. ``DESK_BENCH_NICE=0`` turns it off.
    """
    wanted = int(os.environ.get(NICE_ENV, DEFAULT_NICE))
    try:
        os.setpriority(os.PRIO_PROCESS, 0, wanted)
    except (OSError, AttributeError):
        pass
    try:
        return os.getpriority(os.PRIO_PROCESS, 0)
    except (OSError, AttributeError):
        return 0


def machine() -> dict[str, Any]:
    """Describe the machine the figures come from."""
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nice = os.getpriority(os.PRIO_PROCESS, 0)
    except (OSError, AttributeError):
        nice = 0
    return {"nproc": os.cpu_count(), "cpu": cpu, "memory": mem, "python": platform.python_version(), "nice": nice}


def cpu_seconds(pid: int) -> float:
    """Return user+system CPU seconds a process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def run_queue_wait(pid: int) -> float:
    """Return seconds the process's main thread has spent runnable but waiting for a CPU (Linux schedstat)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return float("nan")


def machine_busy() -> float:
    """Return CPU seconds the whole machine has been busy, over all CPUs (Linux /proc/stat)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Return a process's resident memory in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class ServerProcess:
    """A server started as a subprocess pinned to the server CPU, with its log and lag file."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        workdir: Path,
        port: int,
        env: dict[str, str] | None = None,
        cpu: int = SERVER_CPU,
    ) -> None:
        self.name = name
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.log_path = workdir / f"{name}.log"
        self.lag_path = workdir / f"{name}.lag.json"
        full_env = {**os.environ, **(env or {}), LAG_ENV: str(self.lag_path)}
        full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            cwd=workdir,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: pin(cpu),
        )

    async def wait_ready(self, path: str = "/healthz", timeout: float = 30.0) -> None:
        """Wait until ``path`` answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.log_path}")
            try:
                status, _ = await http_request(HOST, self.port, "GET", path)
                if status == 200:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start in {timeout} s: see {self.log_path}")

    def cpu(self) -> float:
        """Return the server's CPU seconds so far."""
        return cpu_seconds(self.proc.pid)

    def rss(self) -> float:
        """Return the server's RSS in MiB."""
        return rss_mb(self.proc.pid)

    def stop(self, timeout: float = 15.0) -> list[tuple[float, float]]:
        """Stop the server gracefully and return its lag samples ``(time, lag seconds)``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        try:
            data = json.loads(self.lag_path.read_text())
        except (OSError, ValueError):
            return []
        return list(zip(data["t"], data["lag"], strict=True))


def lag_in(samples: Iterable[tuple[float, float]], start: float, end: float) -> dict[str, float]:
    """Summarise lag samples taken between ``start`` and ``end``."""
    return summary_ms([lag for t, lag in samples if start <= t <= end])


def write_lag_samples(path: str, samples: list[tuple[float, float]], extra: dict[str, Any] | None = None) -> None:
    """Write lag samples to ``path`` (the server side of the probe)."""
    data = {"t": [round(t, 6) for t, _ in samples], "lag": [round(v, 6) for _, v in samples], **(extra or {})}
    Path(path).write_text(json.dumps(data))


async def lag_probe(samples: list[tuple[float, float]], interval: float = LAG_INTERVAL) -> None:
    """Sleep ``interval`` again and again and record how late each wake-up is.

    Each sample is kept (about 20 KB a second): ``DESK_BENCH_LAG_SAMPLES=0`` turns the probe off,
    for the soak, where the samples would be most of the server's memory growth.
    """
    if os.environ.get(LAG_SAMPLES_ENV) == "0":
        return
    while True:
        start = time.monotonic()
        await asyncio.sleep(interval)
        now = time.monotonic()
        samples.append((now, max(0.0, now - start - interval)))


MEMORY_EVERY = 10.0


def heap() -> dict[str, float]:
    """Return where this process's memory is: Python objects (pymalloc blocks) and C malloc (glibc mallinfo2).

    ``blocks``: memory blocks Python has allocated (objects alive); ``malloc_used`` /
    ``malloc_free`` MiB: bytes glibc's malloc has handed out / holds free without giving them back
    to the system (fragmentation shows as ``malloc_free``). RSS counts both, and pymalloc's arenas.
    """
    found: dict[str, float] = {"blocks": float(sys.getallocatedblocks())}
    try:
        import ctypes

        class MallInfo2(ctypes.Structure):
            _fields_ = [(name, ctypes.c_size_t) for name in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                "keepcost")]

        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = MallInfo2
        info = libc.mallinfo2()
        found["malloc_used"] = (info.uordblks + info.hblkhd) / 1024 / 1024
        found["malloc_free"] = info.fordblks / 1024 / 1024
    except (OSError, AttributeError):
        pass
    return found


async def memory_probe(samples: list[tuple[float, dict[str, float]]], interval: float = MEMORY_EVERY) -> None:
    """Record ``heap()`` every ``interval`` seconds (the server side of the soak's memory figures)."""
    while True:
        samples.append((time.monotonic(), heap()))
        await asyncio.sleep(interval)


# --- a small, fast HTTP/1.1 keep-alive client -------------------------------------------------
# aiohttp's client costs more CPU per request than the servers under test at their fastest; the
# load generator speaks plain HTTP/1.1 over asyncio streams so that it is not the bottleneck.


class HttpConnection:
    """One keep-alive HTTP/1.1 connection that sends a request and reads its response."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """Send one request and return ``(status, body)``; reconnect once if the server closed it."""
        for attempt in (0, 1):
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
            head += [f"{k}: {v}" for k, v in (headers or {}).items()]
            self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            try:
                raw = await self.reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                self.close()
                if attempt:
                    raise
                continue
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            length, closing, chunked = 0, False, False
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and value.strip().lower() == "close":
                    closing = True
                elif name == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
            if chunked:
                data = b""
                while True:
                    size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                    chunk = await self.reader.readexactly(size + 2)
                    if size == 0:
                        break
                    data += chunk[:-2]
            else:
                data = await self.reader.readexactly(length)
            if closing:
                self.close()
            return status, data
        raise ConnectionError("unreachable")

    def close(self) -> None:
        """Close the connection."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def http_request(
    host: str, port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """Send one request on a new connection."""
    conn = HttpConnection(host, port)
    try:
        return await conn.request(method, path, body, {**(headers or {}), "Connection": "close"})
    finally:
        conn.close()
