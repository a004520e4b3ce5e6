"""``otel-llm compare``: the same prompts through several aliases, side by side.

This module runs a comparison and computes its figures; the command line
only parses, shows progress and renders. Each alias is called through
otel-llm's own async client, pinned to it (a ``request_model`` on a settings
copy with the override on) and with its fallbacks off, so every answer is the
alias's own; retries stay as configured, since a user's calls get them too.
Calls are streamed with usage requested, so the time to the first chunk and
the exact tokens are measured, and the aliases are interleaved, so a noisy
network hits them alike.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from openai.types.chat import ChatCompletionMessageParam

from ._client import AsyncLLMClient, get_async_llm_client_smart
from ._cost import CostFunction, cost_function
from ._endpoints import AzureEndpoint, Endpoint, key_env
from ._errors import ConfigError, UnknownModelError
from ._providers import async_client
from ._settings import LLMSettings
from ._telemetry import error_type

__all__ = [
    "BUILTIN_PROMPTS",
    "P95_TARGET_S",
    "AliasResult",
    "CallResult",
    "Comparison",
    "Messages",
    "Progress",
    "PromptsError",
    "compare_settings",
    "load_prompts",
    "mock_settings",
    "percentile",
    "run_comparison",
]

Messages = list[ChatCompletionMessageParam]
Progress = Callable[[int, int, int], None]
"""``progress(calls_done, calls_total, errors_so_far)``, called after each call."""

P95_TARGET_S = 2.0
"""The product's latency target: P95 under 2 s."""
MOCK_KEY_VARIABLE = "OTEL_LLM_COMPARE_API_KEY"
"""The key variable of every alias under ``--mock``; set to a placeholder for the run."""
_MOCK_KEY = "mock-key-not-secret"


def _prompt(system: str, user: str) -> Messages:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


BUILTIN_PROMPTS: tuple[Messages, ...] = (
    _prompt(
        "You extract keywords from job descriptions. Answer with a comma-separated list, most important first.",
        "Senior Backend Engineer (Python). You will design and run the services behind our matching platform: "
        "FastAPI and PostgreSQL on Kubernetes, event pipelines on Kafka, observability with OpenTelemetry. "
        "You have 5+ years of Python, know SQL well, and have owned services in production.",
    ),
    _prompt(
        "You summarise job descriptions for candidates in two sentences, plain language, no marketing.",
        "We are a 40-person fintech in Berlin looking for a Data Analyst to own reporting for our lending "
        "products. You will build dashboards in Looker, write dbt models, work with risk and finance on KPIs, "
        "and present findings monthly to leadership. Hybrid, two days a week in the office.",
    ),
    _prompt(
        "You compare a resume with a job description and list the requirements the resume does not show.",
        "Job: Machine Learning Engineer; PyTorch, model serving (Triton or TorchServe), AWS, CI/CD for models, "
        "experience with LLM fine-tuning.\nResume: 4 years as a data scientist; scikit-learn and PyTorch; "
        "built churn models; deployed a Flask API on Heroku; SQL, Airflow.",
    ),
    _prompt(
        "You rewrite resume bullet points: start with a strong verb, quantify the result, at most 25 words.",
        "Was responsible for the migration of the old billing system to the new one, which made things faster "
        "and the team happier, and also helped with on-call.",
    ),
    _prompt(
        "You classify the seniority of a job posting as one of: intern, junior, mid, senior, staff. "
        "Answer with the label and one sentence of justification.",
        "Platform Engineer: you will lead the design of our multi-region deployment, mentor three engineers, "
        "set the technical direction for infrastructure and represent the team in architecture reviews.",
    ),
    _prompt(
        "You extract the skills from a resume section and group them as languages, frameworks, tools.",
        "Skills: Go, TypeScript, a little Rust; React and Next.js; gRPC; Terraform, Docker, GitHub Actions; "
        "Grafana and Prometheus; PostgreSQL and Redis.",
    ),
    _prompt(
        "You write a three-sentence cover letter opening tailored to the job, in a confident, modest tone.",
        "Job: Product Designer at a healthcare startup building tools for nurses. Candidate: 6 years in UX, "
        "led the redesign of a hospital scheduling app used by 12,000 staff, strong in research and prototyping.",
    ),
    _prompt(
        "You answer a recruiter's question about a candidate profile in at most three sentences.",
        "Profile: DevOps engineer, 7 years, AWS and GCP, Kubernetes (CKA), Terraform, Python scripting, "
        "on-call lead for a payments platform with 99.99% uptime. Question: is this candidate a fit for an "
        "SRE role that needs incident management and capacity planning experience?",
    ),
)
"""Realistic requests for a keywords / summarising kind of API, used without ``--prompts``."""


class PromptsError(ValueError):
    """A ``--prompts`` file that cannot be used; the message names the file and, when it applies, the line."""

    def __init__(self, path: Path | str, problem: str, line: int | None = None) -> None:
        self.path = str(path)
        self.line = line
        where = self.path if line is None else f"{self.path} line {line}"
        super().__init__(f"{where}: {problem}")


def load_prompts(path: Path | str) -> list[Messages]:
    """The prompts of a JSON-lines file: one ``messages`` list a line (blank lines skipped).

    Checked up front, so that a typo on line 40 fails before any call is paid for.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PromptsError(path, f"cannot read it ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise PromptsError(path, "not UTF-8 text") from None
    prompts: list[Messages] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as exc:
            raise PromptsError(path, f"not JSON ({exc})", number) from None
        problem = _messages_problem(value)
        if problem:
            raise PromptsError(path, problem, number)
        prompts.append(cast(Messages, value))
    if not prompts:
        raise PromptsError(path, "no prompts in it (expected one JSON list of messages a line)")
    return prompts


def _messages_problem(value: Any) -> str | None:
    """What makes ``value`` not a chat ``messages`` list, or ``None``."""
    expected = 'expected a JSON list of messages such as [{"role": "user", "content": "..."}]'
    if not isinstance(value, list) or not value:
        return f"{expected}, got {_json_kind(value)}"
    for index, message in enumerate(value):
        if not isinstance(message, dict):
            return f"message {index} is {_json_kind(message)}, not an object; {expected}"
        role = message.get("role")
        if not isinstance(role, str) or not role:
            return f'message {index} has no "role"'
        if not isinstance(message.get("content"), (str, list)):
            return f'message {index} has no "content" (a string or a list of parts)'
    return None


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    kinds = {dict: "an object", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


@dataclass(frozen=True, slots=True)
class CallResult:
    """One call to one alias, as the caller saw it."""

    alias: str
    latency_s: float
    """From the call to the end of its stream, retries included."""
    first_chunk_s: float | None
    """From the call to the first chunk the caller received; ``None`` when none came."""
    input_tokens: int | None
    """From the stream's usage chunk; ``None`` when the call failed or the server sent no usage."""
    output_tokens: int | None
    cost_usd: float | None
    """``None`` when the model is unpriced or the usage unknown."""
    error: str | None
    """``error.type`` of a failed call (HTTP status, else the exception class); ``None`` when it answered."""


@dataclass(frozen=True, slots=True)
class AliasResult:
    """The figures of one alias over its calls."""

    alias: str
    provider: str
    model: str
    """The canonical model (what it is priced as)."""
    calls: int
    errors: int
    error_types: tuple[tuple[str, int], ...]
    """``(error.type, count)``, most frequent first."""
    latency_p50_s: float | None
    """Over the calls that answered; ``None`` when none did (so for the P95 and first-chunk figures)."""
    latency_p95_s: float | None
    first_chunk_p50_s: float | None
    input_tokens: int | None
    """Totals over the answers that reported usage; ``None`` when none did."""
    output_tokens: int | None
    cost_per_call_usd: float | None
    """Mean over the answers with usage; ``None`` for an unpriced model or when there is none."""
    cost_total_usd: float | None
    """``None`` for an unpriced model; failed calls cost nothing here (they reported no usage)."""
    p95_under_target: bool
    """``latency_p95_s < P95_TARGET_S``; false when no call answered."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """A whole run: its parameters, how long it took, and one result per alias, in the order asked."""

    api: str
    calls_per_alias: int
    concurrency: int
    prompts: int
    wall_s: float
    aliases: tuple[AliasResult, ...]


def percentile(values: Sequence[float], percent: int) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``percent`` % of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    rank = -(-percent * len(ordered) // 100)  # ceil, in integers: no float rounding at exact ranks
    return ordered[max(rank, 1) - 1]


def compare_settings(settings: LLMSettings, aliases: Sequence[str]) -> LLMSettings:
    """A copy of ``settings`` that lets a call be pinned to any of ``aliases``, with no fallbacks.

    An alias that is not configured raises ``UnknownModelError``; one whose key
    variable is not set raises ``ConfigError``, before any call is made.
    """
    for alias in aliases:
        if alias not in settings.endpoints:
            raise UnknownModelError(alias, "--models", settings.endpoints)
    missing = sorted(
        {
            f"{key_env(settings.endpoints[a])} (alias {a!r})"
            for a in aliases
            if not os.environ.get(key_env(settings.endpoints[a]))
        }
    )
    if missing:
        raise ConfigError(f"API key variable not set: {', '.join(missing)}")
    # The operator pins the aliases, not a request: LLM_ALLOWED_MODELS does not apply; and the
    # operator bounds the spend with --calls: a budget's redirect would answer from another alias.
    return settings.model_copy(
        update={"enable_llm_model_override": True, "fallbacks": {}, "allowed_models": {}, "budgets": {}}
    )


@contextmanager
def mock_settings(settings: LLMSettings, aliases: Sequence[str]) -> Iterator[LLMSettings]:
    """The embedded server, started, and ``settings`` with every alias on it (for ``--mock``).

    A configured alias keeps its provider and canonical model (so its price),
    only its URL and key variable change; an alias not configured is the demo's
    when it has one (``gpt41-mini``, ``gpt4o-2``, ...), else an OpenAI model of
    that name. Every configured alias moves, not only the compared ones, so
    nothing of the run can reach the network.
    """
    from ._demo import demo_models
    from .testing import MockLLMServer

    with MockLLMServer() as server, _variable(MOCK_KEY_VARIABLE, _MOCK_KEY):
        models = {
            alias: _on_server(endpoint, server.base_url, server.azure_endpoint)
            for alias, endpoint in settings.endpoints.items()
        }
        demo = demo_models(server, MOCK_KEY_VARIABLE)
        for alias in aliases:
            if alias not in models:
                models[alias] = demo.get(alias) or _on_server_named(alias, server.base_url)
        # Built anew rather than copied: the endpoints derived from ``models`` must be recomputed.
        values = settings.model_dump(exclude={"models"})
        yield LLMSettings(**values, models=models)


def _on_server(endpoint: Endpoint, base_url: str, azure_endpoint: str) -> dict[str, Any]:
    entry = endpoint.model_dump(mode="json")
    entry["api_key_env"] = MOCK_KEY_VARIABLE
    if isinstance(endpoint, AzureEndpoint):
        entry["endpoint"] = azure_endpoint
    else:
        entry["base_url"] = base_url
    return entry


def _on_server_named(alias: str, base_url: str) -> dict[str, Any]:
    return {"provider": "openai", "model": alias, "base_url": base_url, "api_key_env": MOCK_KEY_VARIABLE}


@contextmanager
def _variable(name: str, value: str) -> Iterator[None]:
    """``name=value`` in the environment for the block (clients read their key from it at each call)."""
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def run_comparison(
    api: str,
    aliases: Sequence[str],
    settings: LLMSettings,
    *,
    prompts: Sequence[Messages] = BUILTIN_PROMPTS,
    calls: int = 20,
    concurrency: int = 4,
    progress: Progress | None = None,
) -> Comparison:
    """Send ``calls`` calls to each alias (cycling ``prompts``), at most ``concurrency`` at a time; the figures.

    Runs its own event loop (``asyncio.run``): call it from synchronous code.
    """
    if calls < 1 or concurrency < 1:
        raise ValueError(f"calls and concurrency must be >= 1, got {calls} and {concurrency}")
    if len(set(aliases)) < 2 or len(set(aliases)) != len(aliases):
        raise ValueError(f"compare needs two or more distinct aliases, got {list(aliases)}")
    if not prompts:
        raise ValueError("compare needs at least one prompt")
    pinned = compare_settings(settings, aliases)
    prices = {alias: cost_function(alias, pinned.endpoints[alias], pinned) for alias in aliases}
    start = time.perf_counter()
    results = asyncio.run(_run(api, aliases, pinned, prices, prompts, calls, concurrency, progress))
    wall_s = time.perf_counter() - start
    summaries = tuple(
        _summary(alias, pinned.endpoints[alias], [r for r in results if r.alias == alias], prices[alias] is not None)
        for alias in aliases
    )
    return Comparison(api, calls, concurrency, len(prompts), wall_s, summaries)


def _schedule(aliases: Sequence[str], prompts: Sequence[Messages], calls: int) -> list[tuple[str, Messages]]:
    """Round ``i`` sends prompt ``i`` to every alias, starting one alias further each round.

    So every alias gets the same prompts, and none is always first to meet a slow moment.
    """
    jobs: list[tuple[str, Messages]] = []
    for index in range(calls):
        messages = prompts[index % len(prompts)]
        shift = index % len(aliases)
        jobs.extend((alias, messages) for alias in [*aliases[shift:], *aliases[:shift]])
    return jobs


async def _run(
    api: str,
    aliases: Sequence[str],
    settings: LLMSettings,
    prices: dict[str, CostFunction | None],
    prompts: Sequence[Messages],
    calls: int,
    concurrency: int,
    progress: Progress | None,
) -> list[CallResult]:
    clients = {alias: get_async_llm_client_smart(api, alias, settings=settings) for alias in aliases}
    jobs = _schedule(aliases, prompts, calls)
    semaphore = asyncio.Semaphore(concurrency)  # waiters are woken in order: calls start in schedule order
    results: list[CallResult] = []
    errors = 0

    async def one(alias: str, messages: Messages) -> None:
        nonlocal errors
        async with semaphore:
            result = await _call(clients[alias], alias, messages, prices[alias])
        results.append(result)
        errors += result.error is not None
        if progress is not None:
            progress(len(results), len(jobs), errors)

    try:
        async with asyncio.TaskGroup() as group:
            for alias, messages in jobs:
                group.create_task(one(alias, messages))
    finally:
        await _close_pools(aliases, settings)
    return results


async def _close_pools(aliases: Sequence[str], settings: LLMSettings) -> None:
    """Close the SDK clients the run used: they are this event loop's, which ends with the run.

    Left open, their pooled connections would be dropped with the loop, unclosed.
    """
    used = (async_client(alias, settings.endpoints[alias], settings.http_spans).client for alias in aliases)
    for client in {id(client): client for client in used}.values():
        await client.close()


async def _call(client: AsyncLLMClient, alias: str, messages: Messages, price: CostFunction | None) -> CallResult:
    """One streamed call; any failure is a result (its ``error.type``), not an exception."""
    start = time.perf_counter()
    first_chunk_s: float | None = None
    usage = None
    try:
        stream = await client.chat.completions.create(
            messages=messages, stream=True, stream_options={"include_usage": True}
        )
        async with stream:
            async for chunk in stream:
                if first_chunk_s is None:
                    first_chunk_s = time.perf_counter() - start
                if chunk.usage is not None:
                    usage = chunk.usage
    except Exception as exc:  # a comparison reports failures, whatever they are, and goes on
        return CallResult(alias, time.perf_counter() - start, first_chunk_s, None, None, None, error_type(exc))
    latency_s = time.perf_counter() - start
    if usage is None:
        return CallResult(alias, latency_s, first_chunk_s, None, None, None, None)
    details = usage.prompt_tokens_details
    cached = (details.cached_tokens or 0) if details is not None else 0
    cost = price(usage.prompt_tokens, usage.completion_tokens, cached) if price is not None else None
    return CallResult(alias, latency_s, first_chunk_s, usage.prompt_tokens, usage.completion_tokens, cost, None)


def _summary(alias: str, endpoint: Endpoint, results: Sequence[CallResult], priced: bool) -> AliasResult:
    answered = [r for r in results if r.error is None]
    latencies = [r.latency_s for r in answered]
    first_chunks = [r.first_chunk_s for r in answered if r.first_chunk_s is not None]
    with_usage = [r for r in answered if r.input_tokens is not None]
    costs = [r.cost_usd for r in with_usage if r.cost_usd is not None]
    p95 = percentile(latencies, 95)
    errors = Counter(r.error for r in results if r.error is not None)
    return AliasResult(
        alias=alias,
        provider=endpoint.provider,
        model=endpoint.model,
        calls=len(results),
        errors=sum(errors.values()),
        error_types=tuple(sorted(errors.items(), key=lambda item: (-item[1], item[0]))),
        latency_p50_s=percentile(latencies, 50),
        latency_p95_s=p95,
        first_chunk_p50_s=percentile(first_chunks, 50),
        input_tokens=sum(r.input_tokens or 0 for r in with_usage) if with_usage else None,
        output_tokens=sum(r.output_tokens or 0 for r in with_usage) if with_usage else None,
        cost_per_call_usd=math.fsum(costs) / len(costs) if priced and costs else None,
        # An answer without usage has a cost nobody knows: then the total is not known either.
        cost_total_usd=math.fsum(costs) if priced and len(with_usage) == len(answered) else None,
        p95_under_target=p95 is not None and p95 < P95_TARGET_S,
    )
