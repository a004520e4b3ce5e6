"""Spans and metrics of one logical call and its attempts (SPEC §6).

A logical call is one INTERNAL span ``{operation} {api_name}``; each attempt
is a CLIENT span ``{operation} {request model}`` under it, with the GenAI
semantic-convention attributes. Every LLM call pays for what happens here, so
the attribute sets that depend only on configuration are built once and
reused, each span gets its response attributes in one ``set_attributes``,
and nothing is logged per call.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from timeit import default_timer
from typing import Any

import openai
from opentelemetry import context, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from . import _semconv as names
from ._apis import Answer, Api, Usage
from ._cost import CostFunction
from ._endpoints import Endpoint
from ._guard import NO_SPAN, guarded, report_failure
from ._selection import Selection
from ._semconv import gen_ai, instruments, tracer

__all__ = ["AttemptTelemetry", "CallTelemetry", "error_type"]

Attributes = dict[str, AttributeValue]

_error_types: dict[type[BaseException], str] = {}


def error_type(error: BaseException) -> str:
    """``error.type``: the HTTP status when the provider answered, else the class name."""
    if isinstance(error, openai.APIStatusError):
        return str(error.status_code)
    cls = type(error)
    name = _error_types.get(cls)
    if name is None:
        package = cls.__module__.partition(".")[0]
        name = _error_types[cls] = cls.__qualname__ if package == "builtins" else f"{package}.{cls.__qualname__}"
    return name


_NO_ATTRIBUTES: Attributes = {}


def _start_span(name: str, parent: context.Context | None, kind: SpanKind, attributes: Attributes) -> trace.Span:
    """A started span; a span that records nothing when starting one failed (a span processor raised)."""
    try:
        return tracer.start_span(name, parent, kind, attributes)
    except Exception:
        report_failure(tracer.start_span)
        return NO_SPAN


# Attribute sets that depend only on configuration are built once per
# combination (bounded, should API names ever come from user input).
_SHAPES = 4096


@lru_cache(maxsize=_SHAPES)
def _call_shape(operation: str, api_name: str, source: str) -> tuple[str, Attributes]:
    """The call span's name and start attributes."""
    attributes: Attributes = {
        gen_ai.GEN_AI_OPERATION_NAME: operation,
        names.API_NAME: api_name,
        names.SELECTION_SOURCE: source,
    }
    return f"{operation} {api_name}", attributes


@lru_cache(maxsize=_SHAPES)
def _budget_attributes(api_name: str, outcome: str) -> Attributes:
    """The attributes of ``otel_llm.budget.exceeded``."""
    return {names.API_NAME: api_name, names.OUTCOME: outcome}


@lru_cache(maxsize=_SHAPES)
def _outcome_attributes(api_name: str, alias: str, source: str, outcome: str) -> Attributes:
    """The attributes of ``otel_llm.call.duration``."""
    return {names.API_NAME: api_name, names.MODEL_ALIAS: alias, names.SELECTION_SOURCE: source, names.OUTCOME: outcome}


class _AttemptShape:
    """What the attempt spans and metrics of one (operation, API, alias) share."""

    __slots__ = ("cost_attributes", "cost_key", "input_tokens", "metric", "output_tokens", "span", "span_name")

    def __init__(
        self, operation: str, api_name: str, alias: str, endpoint: Endpoint, host: str, port: int | None
    ) -> None:
        request_model = endpoint.request_model
        self.span_name = f"{operation} {request_model}"
        self.metric: Attributes = {
            gen_ai.GEN_AI_OPERATION_NAME: operation,
            gen_ai.GEN_AI_PROVIDER_NAME: endpoint.otel_provider_name,
            gen_ai.GEN_AI_REQUEST_MODEL: request_model,
            names.API_NAME: api_name,
            names.MODEL_ALIAS: alias,
        }
        self.span: Attributes = {**self.metric, names.SERVER_ADDRESS: host}
        if port is not None:
            self.span[names.SERVER_PORT] = port
        self.input_tokens: Attributes = {**self.metric, gen_ai.GEN_AI_TOKEN_TYPE: "input"}
        self.output_tokens: Attributes = {**self.metric, gen_ai.GEN_AI_TOKEN_TYPE: "output"}
        self.cost_key = (api_name, alias, request_model)
        self.cost_attributes: Attributes = {
            names.API_NAME: api_name,
            names.MODEL_ALIAS: alias,
            gen_ai.GEN_AI_REQUEST_MODEL: request_model,
        }


_attempt_shape = lru_cache(maxsize=_SHAPES)(_AttemptShape)


class CallTelemetry:
    """The logical call: its span, parent of the attempts, and its totals."""

    __slots__ = (
        "_start",
        "api",
        "attempts",
        "context",
        "cost",
        "input_tokens",
        "output_tokens",
        "selection",
        "span",
    )

    def __init__(self, api: Api, selection: Selection) -> None:
        self.api = api
        self.selection = selection
        self.attempts = 0
        self.input_tokens: int | None = None  # totals over the attempts that reported usage
        self.output_tokens: int | None = None
        self.cost: float | None = None
        name, attributes = _call_shape(api.operation, selection.api_name, selection.source)
        self._start = default_timer()
        self.span = _start_span(name, None, SpanKind.INTERNAL, attributes)
        self.context = trace.set_span_in_context(self.span)

    def fallback(self, from_alias: str, to_alias: str, error: str) -> None:
        """One step down the fallback chain."""
        attributes: Attributes = {
            names.API_NAME: self.selection.api_name,
            names.FALLBACK_FROM: from_alias,
            names.FALLBACK_TO: to_alias,
            names.ERROR_TYPE: error,
        }
        self.span.add_event(names.FALLBACK_EVENT, attributes)
        instruments.fallbacks.add(1, attributes)

    def budget_exceeded(self, outcome: str) -> None:
        """An attempt did not fit the API's budget: ``redirected`` to its ``then`` alias, or ``rejected``."""
        instruments.budget_exceeded.add(1, _budget_attributes(self.selection.api_name, outcome))

    def wait(self, alias: str, seconds: float, error: BaseException) -> None:
        """A backoff (or the provider's Retry-After) before the next attempt on ``alias``."""
        self.span.add_event(
            names.WAIT_EVENT,
            {names.MODEL_ALIAS: alias, names.WAIT_SECONDS: seconds, names.ERROR_TYPE: error_type(error)},
        )

    def breaker(self, alias: str, state: str) -> None:
        """``alias``'s circuit breaker changed state during this call."""
        attributes: Attributes = {names.MODEL_ALIAS: alias, names.BREAKER_STATE: state}
        self.span.add_event(names.BREAKER_EVENT, attributes)
        instruments.breaker_transitions.add(1, attributes)

    def end(self, alias: str, fallback_used: bool, error: str | None) -> None:
        """The call is over: record its outcome and totals (``error``: its ``error.type``)."""
        duration = default_timer() - self._start
        span = self.span
        attributes: Attributes = {
            names.MODEL_ALIAS: alias,
            names.ATTEMPTS: self.attempts,
            names.FALLBACK_USED: fallback_used,
        }
        if self.input_tokens is not None:
            attributes[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] = self.input_tokens
        if self.output_tokens is not None:
            attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] = self.output_tokens
        if self.cost is not None:
            attributes[names.COST_USD] = self.cost
        outcome = "fallback" if fallback_used else "ok"
        if error is not None:
            outcome = "error"
            attributes[names.ERROR_TYPE] = error
        _end_span(span, attributes, error)
        instruments.call_duration.record(
            duration,
            _outcome_attributes(self.selection.api_name, alias, self.selection.source, outcome),
            self.context,  # exemplars point at the call's trace
        )

    def add(self, usage: Usage | None, cost: float | None) -> None:
        if usage is not None:
            self.input_tokens = (self.input_tokens or 0) + usage.input_tokens
            if usage.output_tokens is not None:
                self.output_tokens = (self.output_tokens or 0) + usage.output_tokens
        if cost is not None:
            self.cost = cost if self.cost is None else self.cost + cost


class AttemptTelemetry:
    """One attempt: a CLIENT span under the call, current while the request is sent
    (so that the HTTP span nests under it)."""

    __slots__ = ("_start", "_token", "api", "body", "call", "capture", "context", "cost", "cost_of", "shape", "span")

    def __init__(
        self,
        call: CallTelemetry,
        alias: str,
        endpoint: Endpoint,
        server: tuple[str, int | None],
        body: Mapping[str, Any],
        cost_of: CostFunction | None,
        capture: bool,
    ) -> None:
        call.attempts += 1
        self.call = call
        self.api = call.api
        self.body = body
        self.cost_of = cost_of
        self.cost: float | None = None
        """What the attempt cost, once its usage arrived (``None``: unknown, or unpriced)."""
        self.capture = capture
        self.shape = shape = _attempt_shape(self.api.operation, call.selection.api_name, alias, endpoint, *server)
        self._start = default_timer()
        self.span = _start_span(shape.span_name, call.context, SpanKind.CLIENT, shape.span)
        self.context = trace.set_span_in_context(self.span)
        self._token: object | None = context.attach(self.context)

    def detach(self) -> None:
        if self._token is not None:
            context.detach(self._token)  # type: ignore[arg-type]
            self._token = None

    def elapsed(self) -> float:
        """Seconds since the request was sent."""
        return default_timer() - self._start

    def failed(self, error: BaseException) -> None:
        self._end({}, None, error_type(error))

    def response(self, response: Any) -> str | None:
        """A whole response arrived: record it; its ``error.type`` (a failure inside a 200), if any."""
        # A response we cannot read still ends the attempt, with what is known.
        answer = guarded(self.api.read, response, self.capture, default=None) or Answer()
        self.answered(answer)
        return answer.error_type

    def answered(self, answer: Answer, time_to_first_chunk: float | None = None, error: str | None = None) -> None:
        """The response is complete (or its stream is over): record what it carried and end the attempt.

        ``error``: the ``error.type`` of a stream that failed, else the answer's own.
        """
        attributes: Attributes = {}
        if answer.response_id:
            attributes[gen_ai.GEN_AI_RESPONSE_ID] = answer.response_id
        if answer.response_model:
            attributes[gen_ai.GEN_AI_RESPONSE_MODEL] = answer.response_model
        if answer.finish_reasons:
            attributes[gen_ai.GEN_AI_RESPONSE_FINISH_REASONS] = answer.finish_reasons
        if time_to_first_chunk is not None:
            attributes[gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = time_to_first_chunk
            instruments.time_to_first_chunk.record(time_to_first_chunk, self.shape.metric)
        if self.capture and answer.output_messages is not None:
            output = guarded(answer.output_messages, default=None)
            if output is not None:
                attributes[gen_ai.GEN_AI_OUTPUT_MESSAGES] = output
        self._end(attributes, answer.usage, error or answer.error_type)

    def _end(self, attributes: Attributes, usage: Usage | None, error: str | None) -> None:
        duration = default_timer() - self._start
        span = self.span
        shape = self.shape
        body = self.body
        api = self.api
        attributes[names.ATTEMPT] = self.call.attempts
        named = api.request_attributes
        for argument, value in body.items():  # a request body has few keys
            key = named.get(argument)
            if key is not None and value is not None:
                attributes[key] = _attribute_value(value)
        if api.more_request_attributes is not None:
            api.more_request_attributes(body, attributes)
        if self.capture and api.request_content is not None:
            attributes.update(guarded(api.request_content, body, default=_NO_ATTRIBUTES))
        cost = None
        if usage is not None:
            attributes[gen_ai.GEN_AI_USAGE_INPUT_TOKENS] = usage.input_tokens
            if usage.output_tokens is not None:
                attributes[gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS] = usage.output_tokens
            if usage.cached_input_tokens:
                attributes[gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cached_input_tokens
            if usage.reasoning_tokens:
                attributes[gen_ai.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoning_tokens
            if self.cost_of is not None:
                cost = attributes[names.COST_USD] = self.cost_of(
                    usage.input_tokens, usage.output_tokens or 0, usage.cached_input_tokens
                )
        metric, input_tokens, output_tokens = shape.metric, shape.input_tokens, shape.output_tokens
        if error is not None:
            attributes[names.ERROR_TYPE] = error
            metric, input_tokens, output_tokens = (
                {**metric, names.ERROR_TYPE: error},
                {**input_tokens, names.ERROR_TYPE: error},
                {**output_tokens, names.ERROR_TYPE: error},
            )
        # The span ends even when a metric fails to record, and the other way round.
        self.cost = cost
        _end_span(span, attributes, error)
        self.call.add(usage, cost)

        instruments.operation_duration.record(duration, metric, self.context)  # exemplar
        if usage is not None:
            instruments.token_usage.record(usage.input_tokens, input_tokens)
            if usage.output_tokens is not None:
                instruments.token_usage.record(usage.output_tokens, output_tokens)
            if cost is not None:
                instruments.cost.add(shape.cost_key, cost, shape.cost_attributes)


def _end_span(span: trace.Span, attributes: Attributes, error: str | None) -> None:
    """Set the span's outcome and end it; a span processor that raises is reported, never raised."""
    try:
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.set_attributes(attributes)
        span.end()
    except Exception:
        report_failure(_end_span)


def _attribute_value(value: Any) -> AttributeValue:
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    return str(value)
