"""Traffic for the live monitoring test: every kind of call the dashboards chart.

:func:`run_wave` drives the SDK against the embedded server once through
everything the Grafana dashboards show: the four APIs of the seed
(``keywords``, ``gap_analysis``, ``resume_format``, ``resume_tailor``) plus an
embeddings API, every selection source (request, header, env, split, default),
chat, streams (time to first chunk), embeddings, a call that fails (a scripted
429 on a model with no fallback), a call whose primary is faulted with a 503
and that falls back through ``LLM_FALLBACKS``, a burst of such failures on one
primary, enough to open a per-model circuit breaker, and an experiment:
``keywords`` split (``LLM_SPLITS``) between an expensive, slower alias and a
cheaper one that fails once a wave, for the experiments dashboard; and two
reloads of the process-wide settings, one loaded and one refused; and two
budgeted APIs, one redirected to its budget's 'then' and one rejected, and a
budgeted call whose state server cannot be reached.

Run as a script, this module is the subprocess of ``test_monitoring_live.py``:
it installs its own global ``MeterProvider`` with the real
``opentelemetry-exporter-prometheus`` reader (the test process already has
one, and a global provider is set once per process), serves ``/metrics`` on
a free loopback port, prints ``port <n>``, then reads commands from stdin:
``wave`` runs :func:`run_wave` and prints ``done``; ``stop`` or end of input
exits.
"""

from __future__ import annotations

import os
import sys
import time

import openai

from otel_llm import BudgetExceededError, ConfigError, LLMSettings, get_llm_client_smart, get_settings, reload_settings
from otel_llm._demo import demo_models
from otel_llm.testing import Fault, MockLLMServer

KEY_VARIABLE = "OTEL_LLM_MONITORING_TEST_KEY"
"""The variable every alias reads its (placeholder) key from."""

APIS = ("keywords", "gap_analysis", "resume_format", "resume_tailor", "search_index")
"""Every API :func:`run_wave` calls."""

SOURCES = ("request", "header", "env", "split", "default")
"""Every selection source :func:`run_wave` goes through."""

SPLIT_API = "keywords"
"""The API of the experiment: its traffic is split (``LLM_SPLITS``) between the aliases of :data:`SPLIT`."""

SPLIT_OLD_ALIAS = "gpt4o-2"
"""The API's model before the rollout (GPT-4o): the dearer one, and slower: each of its split calls waits
:data:`SPLIT_DELAY_S` first."""

SPLIT_NEW_ALIAS = "gpt41-mini"
"""The model rolled out (GPT-4.1 mini): cheaper; its first split call of a wave fails (a 503, no fallback),
so its error ratio is not zero."""

SPLIT = {SPLIT_OLD_ALIAS: 50, SPLIT_NEW_ALIAS: 50}
"""The experiment's weights (``LLM_SPLITS["keywords"]``), half way through a rollout."""

SPLIT_KEYS = tuple(f"user-{number}" for number in range(10))
"""Sticky keys of the split calls of a wave: the same aliases every wave, each alias several of them."""

SPLIT_DELAY_S = 0.15
"""How much longer the old alias takes (a bucket of its own: 0.08-0.16 s or above)."""

FALLBACK_PRIMARY = "gpt4o-mini"
"""Alias whose model is faulted with a 503 once per wave; it falls back to ``gpt41-mini``."""

BREAKER_PRIMARY = "o4-mini"
"""Alias whose model fails ``BREAKER_FAILURES`` times in a row per wave; it falls back to ``gpt41-mini``."""

BREAKER_FAILURES = 3
"""Retryable failures in a row that open a breaker here (``LLM_BREAKER_FAILURES``)."""

BREAKER_COOLDOWN_S = 0.25
"""How long an open breaker skips its alias here (``LLM_BREAKER_COOLDOWN_S``)."""

FAILING_ALIAS = "gpt41"
"""Alias faulted with a 429 once per wave; with no fallback, that call fails."""

BUDGET_API = "cover_letter"
"""An API with a budget whose 'then' takes the calls its default model cannot afford (outcome ``redirected``)."""

REJECTED_API = "cover_summary"
"""An API with a budget too small for any call, and no 'then' (outcome ``rejected``)."""

UNREACHABLE_STATE_URL = "redis://127.0.0.1:9/0"
"""A state server that is not there (the discard port): its operations are the state errors charted."""

BUDGETS = {
    BUDGET_API: {"usd": 0.01, "window": "day", "then": "gpt41-mini"},
    REJECTED_API: {"usd": 0.00001, "window": "day"},
}

_MESSAGES = [{"role": "user", "content": "Extract the keywords of this job description: Python, OpenTelemetry."}]


def traffic_settings(server: MockLLMServer) -> LLMSettings:
    """Aliases and selection rules pointing at ``server``, as a service would configure them."""

    def openai_model(model: str) -> dict[str, str]:
        return {"provider": "openai", "model": model, "base_url": server.base_url, "api_key_env": KEY_VARIABLE}

    return LLMSettings(
        models={
            **demo_models(server, KEY_VARIABLE),  # the demo's aliases, and two that fail on purpose
            FALLBACK_PRIMARY: openai_model("gpt-4o-mini"),
            BREAKER_PRIMARY: openai_model("o4-mini"),
        },
        model_default="gpt41",
        api_models={
            "LLM_MODEL_GAP_ANALYSIS": "gpt4o-2",
            "LLM_MODEL_SEARCH_INDEX": "embed-small",
        },
        splits={SPLIT_API: SPLIT},  # in place of LLM_MODEL_KEYWORDS: both for one API is a ConfigError
        budgets=BUDGETS,
        fallbacks={FALLBACK_PRIMARY: ["gpt41-mini"], BREAKER_PRIMARY: ["gpt41-mini"]},
        enable_llm_model_override=True,
        enable_llm_model_header=True,
        # One attempt per model: a faulted primary falls back at once (no backoff
        # sleeps), and the 429 call fails instead of succeeding on a retry.
        retry_attempts=1,
        call_timeout_s=30,
        # A low threshold and a short cool-down: each wave opens, probes and closes the breaker.
        breaker_failures=BREAKER_FAILURES,
        breaker_cooldown_s=BREAKER_COOLDOWN_S,
    )


def _chat(api: str, settings: LLMSettings, request_model: str | None = None, header: str | None = None) -> None:
    headers = {"X-LLM-Model": header} if header else None
    get_llm_client_smart(api, request_model, headers, settings).chat.completions.create(messages=_MESSAGES)


def _stream(api: str, settings: LLMSettings) -> None:
    stream = get_llm_client_smart(api, settings=settings).chat.completions.create(messages=_MESSAGES, stream=True)
    for _ in stream:
        pass


def _chat_failing(api: str, settings: LLMSettings, error: type[Exception], request_model: str) -> None:
    """A call that must reach the caller as the provider's ``error``."""
    try:
        _chat(api, settings, request_model)
    except error:
        return
    raise AssertionError(f"{api} on {request_model}: expected {error.__name__}")


def _split_calls(server: MockLLMServer, settings: LLMSettings) -> None:
    """The experiment: one call per sticky key (the second a stream), on whichever alias the split gives it.

    Every call to :data:`SPLIT_OLD_ALIAS` is delayed; the first to
    :data:`SPLIT_NEW_ALIAS` answers 503 and, with no fallback, fails.
    Raises unless every alias of the split answered calls and the failure happened.
    """
    answered: dict[str, int] = dict.fromkeys(SPLIT, 0)
    failed = False
    for number, key in enumerate(SPLIT_KEYS):
        client = get_llm_client_smart(SPLIT_API, settings=settings, split_key=key)
        selection = client.selection
        if selection.source != "split":
            raise AssertionError(f"{SPLIT_API} with key {key}: selected by {selection.source}, not by its split")
        model = settings.endpoints[selection.model].request_model
        if selection.model == SPLIT_OLD_ALIAS:
            server.add_faults(model, Fault.delay(SPLIT_DELAY_S))
        if selection.model == SPLIT_NEW_ALIAS and not failed:
            server.add_faults(model, Fault.status(503))
            try:
                client.chat.completions.create(messages=_MESSAGES)
            except openai.InternalServerError:
                failed = True
                continue
            raise AssertionError(f"{SPLIT_API} on {selection.model}: expected InternalServerError")
        if number == 1:
            for _ in client.chat.completions.create(messages=_MESSAGES, stream=True):
                pass
        else:
            client.chat.completions.create(messages=_MESSAGES)
        answered[selection.model] += 1
    if not failed or not all(answered.values()):
        raise AssertionError(f"the split keys {SPLIT_KEYS} must reach every alias of {SPLIT}: answered {answered}")


def run_wave(server: MockLLMServer, settings: LLMSettings) -> None:
    """One round of every kind of call the dashboards chart (sequential, so faults land where meant)."""
    # split: LLM_SPLITS sends keywords to gpt4o-2 or gpt41-mini by key, chat and a stream
    _split_calls(server, settings)
    # env: LLM_MODEL_GAP_ANALYSIS, an Azure deployment, chat and stream
    _chat("gap_analysis", settings)
    _stream("gap_analysis", settings)
    # default: nothing set for resume_format
    _chat("resume_format", settings)
    # header and request overrides
    _chat("resume_tailor", settings, header="gpt41-mini")
    _chat("resume_tailor", settings, request_model="gpt4o-2")
    # embeddings (input tokens only)
    get_llm_client_smart("search_index", settings=settings).embeddings.create(input=["python", "opentelemetry"])

    # A failure: throttled, on a model with no fallback (error.type "429", outcome "error").
    server.add_faults(settings.endpoints[FAILING_ALIAS].request_model, Fault.status(429))
    _chat_failing("resume_tailor", settings, openai.RateLimitError, request_model=FAILING_ALIAS)

    # A fallback: the primary answers 503, LLM_FALLBACKS moves the call to gpt41-mini
    # (outcome "fallback", one otel_llm.fallbacks step gpt4o-mini -> gpt41-mini).
    server.add_faults(settings.endpoints[FALLBACK_PRIMARY].request_model, Fault.status(503))
    _chat("keywords", settings, request_model=FALLBACK_PRIMARY)

    # A primary failing again and again, each call saved by its fallback: its
    # circuit breaker opens (open). After the cool-down the next call probes it
    # (half_open), the model answers, the breaker closes (closed). Every
    # transition, every wave, so each breaker series increases between scrapes.
    server.add_faults(settings.endpoints[BREAKER_PRIMARY].request_model, *[Fault.status(503)] * BREAKER_FAILURES)
    for _ in range(BREAKER_FAILURES):
        _chat("resume_format", settings, header=BREAKER_PRIMARY)
    time.sleep(BREAKER_COOLDOWN_S * 1.2)
    _chat("resume_format", settings, header=BREAKER_PRIMARY)  # the probe: no fault left, the model answers

    _reloads()
    _over_budget(settings)


def _over_budget(settings: LLMSettings) -> None:
    """One call redirected by its budget, one rejected."""
    # 4000 output tokens: a worst case gpt41 ($8 per 1M out) cannot fit in $0.01, gpt41-mini ($1.6) can.
    client = get_llm_client_smart(BUDGET_API, settings=settings)
    response = client.chat.completions.create(messages=_MESSAGES, max_tokens=4000)
    if response.model != settings.endpoints["gpt41-mini"].request_model:
        raise AssertionError(f"{BUDGET_API}: expected the budget's 'then' to answer, got {response.model}")
    try:
        get_llm_client_smart(REJECTED_API, settings=settings).chat.completions.create(messages=_MESSAGES)
    except BudgetExceededError:
        pass
    else:
        raise AssertionError(f"{REJECTED_API}: a call fitted a budget too small for any")
    # A state server nobody listens on (LLM_STATE_FAILURE=open): the call goes on, counted by this
    # process alone, and otel_llm.state.errors counts what the server did not serve.
    unreachable = settings.model_copy(update={"state_url": UNREACHABLE_STATE_URL})
    get_llm_client_smart(BUDGET_API, settings=unreachable).chat.completions.create(messages=_MESSAGES, max_tokens=16)


def _reloads() -> None:
    """One reload of the process-wide settings that loads, and one that is refused (the old settings stay)."""
    reload_settings()
    os.environ["LLM_RETRY_ATTEMPTS"] = "0"
    try:
        reload_settings()
    except ConfigError:
        pass
    else:
        raise AssertionError("LLM_RETRY_ATTEMPTS=0 was accepted")
    finally:
        del os.environ["LLM_RETRY_ATTEMPTS"]


def main() -> None:
    """Serve this process's metrics to Prometheus and run waves on command (see the module doc)."""
    from opentelemetry import metrics
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import start_http_server

    os.environ.setdefault(KEY_VARIABLE, "monitoring-test-key-not-secret")
    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))
    httpd, _ = start_http_server(0, addr="127.0.0.1")
    try:
        with MockLLMServer() as server:
            settings = traffic_settings(server)
            get_settings()  # the process-wide settings the waves reload (the first load is not a reload)
            print(f"port {httpd.server_port}", flush=True)
            for line in sys.stdin:
                command = line.strip()
                if command == "wave":
                    run_wave(server, settings)
                    print("done", flush=True)
                elif command == "stop":
                    break
    finally:
        httpd.shutdown()
        httpd.server_close()


if __name__ == "__main__":
    main()
