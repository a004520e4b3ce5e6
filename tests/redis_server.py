"""A real ``redis-server`` for the state store tests, and the code their other processes run.

The server listens on a free 127.0.0.1 port and persists nothing
(``--save "" --appendonly no``, a temporary ``--dir``). :meth:`RedisServer.kill`
and :meth:`RedisServer.start` take it down and bring it back on the same port,
for outages. The worker functions below run in ``spawn`` processes: they are
importable from this module, and import only what they need.
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from helpers import debian_binary


def redis_server_binary() -> str:
    """Debian's ``redis-server``; without it the Redis tests are skipped (failed under CI)."""
    return debian_binary("redis-server", "the state store tests on Redis")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process; started again on the same port after :meth:`kill`."""

    def __init__(self) -> None:
        self._binary = redis_server_binary()
        self.port = free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="otel-llm-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server and wait until it answers PING."""
        assert self._process is None, "already running"
        self._process = subprocess.Popen(
            [
                self._binary,
                "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self._dir),
                "--daemonize", "no", "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not _ping(self.port):
            if self._process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self._process.returncode} on port {self.port}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not answer PING on port {self.port} in {timeout_s} s")
            time.sleep(0.01)

    def kill(self) -> None:
        """Stop it abruptly (SIGKILL), as a crash would: its data is gone."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def pause(self) -> None:
        """Freeze it (SIGSTOP): connections are accepted by the kernel, nothing answers."""
        assert self._process is not None
        self._process.send_signal(19)

    def resume(self) -> None:
        assert self._process is not None
        self._process.send_signal(18)

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- run in other processes -----------------------------------------------------------


def race_worker(url: str, key: str, limit: int, threads: int, rounds: int, seed: int, start: Any, out: Any) -> None:
    """``threads`` threads reserve random amounts on ``key`` until refused, then settle each at a
    random cost no larger than its reservation, ``rounds`` times; the figures go to ``out``."""
    from otel_llm._redis_state import RedisState

    store = RedisState(url, read_timeout_s=5.0)
    lock = threading.Lock()
    totals = {"reserves": 0, "refusals": 0, "settles": 0, "reserved": 0, "cost": 0, "lowest_remaining": limit}
    go = threading.Barrier(threads)

    def run(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        counts = dict.fromkeys(totals, 0)
        lowest = limit
        go.wait()
        for _ in range(rounds):
            held: list[tuple[str, int]] = []
            while True:
                now = time.time()
                amount = rng.randint(1, 200_000)
                reservation, left = store.reserve(key, amount, limit, now + 60, now + 600, now)
                if reservation is None:
                    counts["refusals"] += 1
                    break
                counts["reserves"] += 1
                counts["reserved"] += amount
                lowest = min(lowest, left)
                held.append((reservation, amount))
            for reservation, amount in held:
                cost = rng.randint(0, amount)
                store.settle(key, reservation, cost, time.time() + 600)
                counts["settles"] += 1
                counts["cost"] += cost
        with lock:
            for name in ("reserves", "refusals", "settles", "reserved", "cost"):
                totals[name] += counts[name]
            totals["lowest_remaining"] = min(totals["lowest_remaining"], lowest)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    start.wait()  # every process ready: they race from here
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    out.put(totals)


def breaker_worker(url: str, key: str, threshold: int, cooldown_s: float, out: Any) -> None:
    """Report ``threshold`` failures of ``key``'s endpoint; the states it moved to go to ``out``."""
    from otel_llm._redis_state import RedisState

    store = RedisState(url)
    out.put([store.breaker_failure(key, threshold, cooldown_s, time.time()) for _ in range(threshold)])
