"""What the benchmarks share: the server in its own process, and interleaved timing."""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from unittest import mock


@contextmanager
def server_process(reply_words: int = 16, tls: bool = False) -> Iterator[str]:
    """The embedded server in its own process, as a real provider would be; yields its base URL.

    With ``tls`` it serves HTTPS with a certificate of a private CA made for the run, which
    the HTTP clients built meanwhile in this process trust (see :func:`_private_ca`).
    """
    command = [sys.executable, "-m", "otel_llm", "mock-server", "--port", "0", "--reply-words", str(reply_words)]
    with ExitStack() as stack:
        if tls:
            command += ["--tls-cert", stack.enter_context(_private_ca())]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            assert process.stdout is not None
            first_line = process.stdout.readline()
            yield first_line.split(" on ", 1)[1].split()[0]
        finally:
            process.terminate()
            process.wait(timeout=10)


@contextmanager
def _private_ca() -> Iterator[str]:
    """A private CA (trustme) named by ``SSL_CERT_FILE``, as a user of one would; yields its server
    certificate's file (key included). httpx2 reads the variable when a client is built."""
    import trustme

    ca = trustme.CA()
    with tempfile.TemporaryDirectory() as folder:
        ca_file, certificate_file = os.path.join(folder, "ca.pem"), os.path.join(folder, "server.pem")
        ca.cert_pem.write_to_path(ca_file)
        ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(certificate_file)
        with mock.patch.dict(os.environ, {"SSL_CERT_FILE": ca_file}):
            yield certificate_file


@contextmanager
def redis_process() -> Iterator[str | None]:
    """Debian's ``redis-server`` on a free loopback port, persisting nothing; yields its URL (``None``: not there)."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def per_call_us(function: Callable[[], object], calls: int = 1000, samples: int = 200) -> float:
    """Median over ``samples`` of the mean time of ``calls`` back-to-back calls, in microseconds."""
    times = []
    for _ in range(samples):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        times.append((time.perf_counter() - start) / calls)
    return statistics.median(times) * 1e6


@dataclass(frozen=True)
class Comparison:
    raw_us: float
    ours_us: float
    ratios: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    def line(self, label: str) -> str:
        low, _, high = statistics.quantiles(self.ratios, n=4)
        return (
            f"{label:<44} raw {self.raw_us:8.1f} us  otel-llm {self.ours_us:8.1f} us  "
            f"ratio {self.ratio:.3f}x (quartiles {low:.3f}-{high:.3f})"
        )


def interleaved(raw: Callable[[], object], ours: Callable[[], object], rounds: int, block: int) -> Comparison:
    """Each block of ``ours`` timed between two blocks of ``raw``; ratios per round."""

    def block_seconds(function: Callable[[], object]) -> float:
        start = time.perf_counter()
        for _ in range(block):
            function()
        return (time.perf_counter() - start) / block

    for _ in range(block):  # warm both pools and code paths
        raw()
        ours()
    ratios, raw_times, our_times = [], [], []
    before = block_seconds(raw)
    for _ in range(rounds):
        mine = block_seconds(ours)
        after = block_seconds(raw)
        ratios.append(mine / ((before + after) / 2))
        raw_times.append(before)
        our_times.append(mine)
        before = after
    return Comparison(statistics.median(raw_times) * 1e6, statistics.median(our_times) * 1e6, ratios)
