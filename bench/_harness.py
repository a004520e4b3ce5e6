"""What the benchmarks share: the server in its own process, the SDK providers, the calls, and interleaved timing."""

from __future__ import annotations

import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import httpx2
import openai
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.httpx import HTTPX2ClientInstrumentor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_llm import LLMSettings, get_llm_client_smart

VARIANTS = ("raw", "lean", "default")  # the raw openai client; otel-llm with LLM_HTTP_SPANS=false; by default
# the raw client with its HTTP client instrumented (httpx2 instrumentation alone); with the official instrumentation
REFERENCES = ("httpx2", "openai-v2")
KINDS = ("chat", "stream", "responses")
MESSAGES = [{"role": "user", "content": "Extract the keywords of this job description."}]
INPUT = "Extract the keywords of this job description."
KEY_VARIABLE = "OTEL_LLM_BENCH_KEY"


def versions() -> str:
    """What the figures depend on: the interpreter, the SDK, and the OpenTelemetry SDK (whose cost per
    attribute changed from 1.44 to 1.45)."""
    from importlib.metadata import version

    sdk = version("opentelemetry-sdk")
    return f"python {sys.version.split()[0]}, openai {openai.__version__}, opentelemetry-sdk {sdk}"


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


class DropExporter(SpanExporter):
    """Receives every batch, as an OTLP exporter would, counts its spans by instrumentation scope, and drops it."""

    def __init__(self) -> None:
        self.spans_by_scope: Counter[str] = Counter()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans_by_scope.update(scope.name if (scope := span.instrumentation_scope) else "" for span in spans)
        return SpanExportResult.SUCCESS


def install_sdk() -> tuple[TracerProvider, DropExporter, InMemoryMetricReader]:
    """Real SDK providers, as in a service: spans batched to an exporter that drops them, and a metric reader."""
    provider = TracerProvider()
    exporter = DropExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    reader = InMemoryMetricReader()
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    return provider, exporter, reader


def import_openai_v2() -> type | None:
    """The official instrumentation's ``OpenAIInstrumentor`` (``None``: not installed, see the ``bench`` extra).

    It imports ``httpx`` for one check, whether the client's ``base_url`` is an
    ``httpx.URL`` (then it records ``server.address`` and ``server.port``);
    since openai 3 the SDK's URLs are httpx2's, so httpx2 stands in for httpx
    while it is imported: it then does the work it does on the SDK it was
    written for, and httpx (whose presence changes how mypy sees the httpx
    instrumentation's types) need not be installed.
    """
    stand_in = "httpx" not in sys.modules
    if stand_in:
        sys.modules["httpx"] = httpx2
    try:
        from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor
    except ImportError:
        return None
    finally:
        if stand_in:
            del sys.modules["httpx"]
    return OpenAIInstrumentor


def sdk_call(variant: str, kind: str, base_url: str) -> Callable[[], object]:
    """One call of ``kind`` (a stream read to its end) by one of the :data:`VARIANTS` or :data:`REFERENCES`.

    ``openai-v2`` instruments the SDK's classes for the whole process, and asks
    for a stream's usage chunk (it records a stream's tokens only from it).
    """
    stream_options: dict[str, object] = {}
    if variant in VARIANTS[1:]:
        os.environ[KEY_VARIABLE] = "bench-key"
        endpoint = {"provider": "openai", "model": "gpt-4.1-mini", "base_url": base_url, "api_key_env": KEY_VARIABLE}
        settings = LLMSettings(models={"mini": endpoint}, model_default="mini", http_spans=variant == "default")

        def client() -> openai.OpenAI:
            return get_llm_client_smart("keywords", settings=settings)  # per call, as a service asks per request

        model = {}
    else:
        http_client = openai.DefaultHttpxClient() if variant == "httpx2" else None
        if http_client is not None:
            HTTPX2ClientInstrumentor.instrument_client(http_client)
        if variant == "openai-v2":
            instrumentor = import_openai_v2()
            if instrumentor is None:
                raise RuntimeError("openai-v2 is not installed: pip install -e '.[bench]'")
            instrumentor().instrument()
            stream_options = {"stream_options": {"include_usage": True}}
        raw = openai.OpenAI(base_url=base_url, api_key="bench-key", max_retries=0, http_client=http_client)

        def client() -> openai.OpenAI:
            return raw

        model = {"model": "gpt-4.1-mini"}
    return {
        "chat": lambda: client().chat.completions.create(messages=MESSAGES, **model),
        "stream": lambda: list(
            client().chat.completions.create(messages=MESSAGES, stream=True, **model, **stream_options)
        ),
        "responses": lambda: client().responses.create(input=INPUT, **model),
    }[kind]


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
    calls: int  # of ``ours``, warm-up included

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios)

    def line(self, label: str, ours: str = "otel-llm") -> str:
        low, _, high = statistics.quantiles(self.ratios, n=4)
        return (
            f"{label:<44} raw {self.raw_us:8.1f} us  {ours:<8} {self.ours_us:8.1f} us  "
            f"ratio {self.ratio:.3f}x (quartiles {low:.3f}-{high:.3f})"
        )


def interleaved(
    raw: Callable[[], object],
    ours: Callable[[], object],
    rounds: int,
    block: int,
    around_ours: Callable[[], AbstractContextManager[object]] = nullcontext,
) -> Comparison:
    """Each block of ``ours`` timed between two blocks of ``raw``; ratios per round.

    ``around_ours`` is entered outside the timing around each block of ``ours``
    only: a global patch (an instrumentation of the SDK's classes) that must
    leave the raw blocks alone.
    """

    def block_seconds(function: Callable[[], object]) -> float:
        start = time.perf_counter()
        for _ in range(block):
            function()
        return (time.perf_counter() - start) / block

    def our_block_seconds() -> float:
        with around_ours():
            return block_seconds(ours)

    block_seconds(raw)  # warm both pools and code paths
    our_block_seconds()
    ratios, raw_times, our_times = [], [], []
    before = block_seconds(raw)
    for _ in range(rounds):
        mine = our_block_seconds()
        after = block_seconds(raw)
        ratios.append(mine / ((before + after) / 2))
        raw_times.append(before)
        our_times.append(mine)
        before = after
    return Comparison(
        statistics.median(raw_times) * 1e6, statistics.median(our_times) * 1e6, ratios, block * (rounds + 1)
    )


def callgrind_instructions(command: Sequence[str], seed: int) -> int:
    """The instructions ``command`` executes under ``valgrind --tool=callgrind``, with hash seed ``seed``
    (it decides dict layouts: counts move by about half a percent from one seed to another)."""
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", *command],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
        )
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError(f"no instruction total in callgrind's output for {' '.join(command)}")
