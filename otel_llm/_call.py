"""One logical call, the way it flows: selection -> attempts (retries, fallbacks)
-> provider client -> telemetry.

A call starts in the client's request path with the SDK's own request (its
``FinalRequestOptions``, already built from the method's arguments). Each
attempt sends that request through the SDK client of the alias it tries,
with that alias's model. ``run_sync`` and ``run_async`` differ only in how
they wait; everything else (the alias chain, the breakers, the deadline, the
telemetry) is shared by ``LogicalCall``. Each model of the chain gets its
attempts from a tenacity ``Retrying``; when they are spent on retryable
errors the next alias is tried, all within ``LLM_CALL_TIMEOUT_S``. An attempt
ends by ``LLM_ATTEMPT_TIMEOUT_S`` when it is set (through the transport's read deadline), so a
hung model costs that much, not the whole deadline. A stream is retried only
before its first output: the attempt reads that far ahead.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Mapping
from contextvars import Token
from functools import lru_cache
from typing import Any

import httpx2
import openai
from openai._constants import RAW_RESPONSE_HEADER
from openai._legacy_response import LegacyAPIResponse
from openai._models import FinalRequestOptions
from tenacity import AsyncRetrying, RetryCallState, Retrying, retry_if_exception

from . import _budgets
from ._apis import CHAT, Api
from ._breaker import BreakerState
from ._budgets import Spending, budget_for
from ._cost import CostFunction, cost_function
from ._endpoints import Endpoint, state_home
from ._errors import BudgetExceededError, ConfigError
from ._guard import guarded
from ._providers import Provider, async_client, sync_client
from ._resources import is_selected
from ._retry import is_retryable, stop_for_call, wait_for_provider
from ._selection import Selection, with_request_model
from ._settings import LLMSettings
from ._state import BreakerCheck, in_background, process_store
from ._streams import AsyncObservedStream, ObservedRawResponse, ObservedStream, StreamObserver
from ._telemetry import AttemptTelemetry, CallTelemetry, error_type
from ._transport import read_deadline

__all__ = ["LogicalCall", "run_async", "run_sync"]

_log = logging.getLogger("otel_llm")
_RETRYABLE = retry_if_exception(is_retryable)
_BUDGET_EXCEEDED = "budget_exceeded"
"""``error.type`` of the fallback step from an alias the budget could not afford to its ``then``."""
_RAW_RESPONSES = (LegacyAPIResponse, openai.APIResponse, openai.AsyncAPIResponse)


@lru_cache(maxsize=64)
def _wait(max_wait: float) -> wait_for_provider:
    return wait_for_provider(max_wait)


class LogicalCall:
    """A call as the caller made it: which aliases may answer it, in what time, and how it is recorded."""

    __slots__ = (
        "_bounded",
        "_caller_timeout",
        "_chain",
        "_checked",
        "_clean",
        "_deadline",
        "_deadline_token",
        "_failures",
        "_home",
        "_index",
        "_redirected",
        "alias",
        "api",
        "attempt",
        "body",
        "endpoint",
        "hide_usage_chunk",
        "is_async",
        "options",
        "settings",
        "spending",
        "store",
        "telemetry",
    )

    def __init__(
        self,
        api: Api,
        selection: Selection,
        settings: LLMSettings,
        options: FinalRequestOptions,
        client_timeout: float | httpx2.Timeout | openai.NotGiven | None,
    ) -> None:
        body: dict[str, Any] = options.json_data  # type: ignore[assignment]  # a generating request's JSON object
        requested = body.get("model")
        if not is_selected(requested):
            selection = with_request_model(selection, requested, settings)
        self.api = api
        self.settings = settings
        self.options = options
        self.body = body
        self._deadline = time.monotonic() + settings.call_timeout_s
        # Each request gets what is left of the deadline, or the caller's own
        # timeout (the call's, else the client's) when shorter; none given
        # (``None``) leaves it to the deadline. An httpx Timeout object is the
        # caller's to manage.
        timeout = options.timeout
        if timeout is None or isinstance(timeout, openai.NotGiven):
            timeout = client_timeout
        self._caller_timeout: float | None = timeout if isinstance(timeout, (int, float)) else None
        self._bounded = self._caller_timeout is not None or timeout is None or isinstance(timeout, openai.NotGiven)
        if not self._bounded:
            options.timeout = timeout
        self.hide_usage_chunk = api is CHAT and body.get("stream") is True and _request_usage(body, options)
        self._chain = [selection.model, *settings.fallback_chain(selection.model)]
        self._index = 0  # the selected alias is tried first, whatever its breaker (see _can_move_on)
        self._failures: list[str] = []
        self.alias = selection.model
        self.endpoint: Endpoint = settings.endpoints[self.alias]
        # A call that continues state stored by the provider can only go where that state is
        # (the selected alias's, so the first alias of the chain is never skipped for it).
        self._home = state_home(self.endpoint) if api.stateful_arguments and _continues(body, api) else None
        self.attempt: AttemptTelemetry | None = None
        self._deadline_token: Token[float | None] | None = None
        self.store = process_store(settings.state_url, settings.state_failure)
        self._checked = -1  # the index of the alias whose breaker this call asked last
        self._clean = True
        budget = budget_for(selection.api_name, settings)
        self.spending = (
            None if budget is None else Spending(selection.api_name, budget, self.store, settings.call_timeout_s)
        )
        self._redirected = False
        self.is_async = False
        self.telemetry = CallTelemetry(api, selection)

    # -- the chain of aliases ---------------------------------------------------

    def _next_alias(self, reason: str) -> bool:
        """Move to the next alias that may be tried (its breaker is asked before its first attempt),
        recording the step (``reason``: its ``error.type``).

        An alias that cannot hold the call's stored state is skipped.
        """
        previous = self.alias
        while self._index < len(self._chain) - 1:
            self._index += 1
            alias = self._chain[self._index]
            guarded(self.telemetry.fallback, previous, alias, reason)
            endpoint = self.settings.endpoints[alias]
            if self._home is not None and state_home(endpoint) != self._home:
                self._failures.append(f"{alias}: skipped, it cannot see the stored state")
                previous, reason = alias, "stateful"
                continue
            self.alias = alias
            self.endpoint = endpoint
            return True
        return False

    def _can_move_on(self) -> bool:
        """Whether an alias after the current one could take the call."""
        later = self._chain[self._index + 1 :]
        return any(self._home is None or state_home(self.settings.endpoints[a]) == self._home for a in later)

    def retrying(self) -> dict[str, Any]:
        """The tenacity policy for the current alias."""
        settings = self.settings
        return {
            "stop": stop_for_call(settings.retry_attempts, settings.retry_max_wait_s, self._deadline),
            "wait": _wait(settings.retry_max_wait_s),
            "retry": _RETRYABLE,
            "before_sleep": self._before_sleep,
            "reraise": True,
        }

    def _before_sleep(self, retry_state: RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome is not None else None
        if error is not None:
            guarded(self.telemetry.wait, self.alias, retry_state.upcoming_sleep, error)

    def fall_back(self, error: BaseException) -> bool:
        """The current alias failed for good: move down the chain, or end the call (``False``)."""
        if isinstance(error, _CircuitOpen):
            self._failures.append(f"{self.alias}: skipped, circuit open")
            return self._next_alias("circuit_open")
        if isinstance(error, BudgetExceededError):
            return self._over_budget(error)
        if is_retryable(error) and time.monotonic() < self._deadline and self._next_alias(error_type(error)):
            return True
        if self._failures:
            error.add_note(
                f"otel-llm: API {self.telemetry.selection.api_name!r}, every attempt failed: "
                + "; ".join(self._failures)
            )
        self._end(error_type(error))
        return False

    def _over_budget(self, error: BudgetExceededError) -> bool:
        """The attempt did not fit the API's budget: on to its ``then`` alias, once, or the call ends."""
        assert self.spending is not None
        then = self.spending.budget.then
        redirect = then is not None and then != self.alias and not self._redirected
        outcome = "redirected" if redirect else "rejected"
        guarded(self.telemetry.budget_exceeded, outcome)
        if redirect:
            assert then is not None
            self._redirected = True
            self._chain = [*self._chain[: self._index + 1], then, *self.settings.fallback_chain(then)]
            if self._next_alias(_BUDGET_EXCEEDED):
                return True
        self._end(error_type(error))
        return False

    # -- one attempt --------------------------------------------------------------

    def before_attempt(self) -> None:
        """Before an attempt is sent: the alias's breaker, once a call (``_CircuitOpen`` to skip it),
        then the attempt's worst case against the API's budget (``BudgetExceededError``)."""
        if self._checked != self._index:
            key, cooldown = _breaker_key(self.endpoint), self.settings.breaker_cooldown_s
            self._breaker_checked(self.store.breaker_check(key, cooldown, _budgets.clock()))
        if self.spending is not None:
            self.spending.reserve(self._cost(), self.body, self.api.operation != "embeddings")

    async def abefore_attempt(self) -> None:
        if self._checked != self._index:
            key, cooldown = _breaker_key(self.endpoint), self.settings.breaker_cooldown_s
            self._breaker_checked(await self.store.abreaker_check(key, cooldown, _budgets.clock()))
        if self.spending is not None:
            await self.spending.areserve(self._cost(), self.body, self.api.operation != "embeddings")

    def _breaker_checked(self, check: BreakerCheck) -> None:
        self._checked = self._index
        self._clean = check.clean
        self._breaker_moved(self.alias, check.moved)
        if not check.allowed and self._can_move_on():  # the last alias is tried even when open
            raise _CircuitOpen

    def _cost(self) -> CostFunction:
        cost = cost_function(self.alias, self.endpoint, self.settings)
        if cost is None:  # the settings refuse a budgeted API that can reach an unpriced alias
            raise ConfigError(f"alias {self.alias!r} has no known price: a budgeted API cannot use it")
        return cost

    def _settle(self, cost: float | None) -> None:
        if self.spending is not None:
            self.spending.settle(cost, self.is_async)

    def start_attempt(self, provider: Provider[Any]) -> None:
        """Open the attempt span, aim the request (``options``) at the current alias and
        bound the attempt's waits; :meth:`end_attempt` undoes the last two."""
        options = self.options
        self.body["model"] = self.endpoint.request_model
        now = time.monotonic()
        if self._bounded:
            remaining = max(self._deadline - now, 0.001)
            caller = self._caller_timeout
            seconds = remaining if caller is None else min(caller, remaining)
            # A field of the SDK's pydantic options, set directly: a validated
            # assignment costs a microsecond on every attempt. It bounds each
            # read of a stream after the attempt too. A Timeout with its four
            # parts given, because httpx makes one from a float through a
            # typing-Protocol isinstance check that costs four times as much.
            options.__dict__["timeout"] = httpx2.Timeout(connect=seconds, read=seconds, write=seconds, pool=seconds)
        attempt_timeout = self.settings.attempt_timeout_s
        if attempt_timeout is not None:  # without it, the request's timeout (what is left) is the bound
            self._deadline_token = read_deadline.set(min(self._deadline, now + attempt_timeout))
        self.attempt = AttemptTelemetry(
            self.telemetry,
            self.alias,
            self.endpoint,
            (provider.address, provider.port),
            self.body,
            cost_function(self.alias, self.endpoint, self.settings),
            self.settings.capture_message_content,
        )

    def end_attempt(self) -> None:
        """The request and its read-ahead are over: the caller's context is as it was."""
        assert self.attempt is not None
        if self._deadline_token is not None:
            read_deadline.reset(self._deadline_token)
            self._deadline_token = None
        self.attempt.detach()

    def attempt_failed(self, error: BaseException) -> None:
        assert self.attempt is not None
        self._failures.append(f"#{self.telemetry.attempts} {self.alias}: {error_type(error)}")
        guarded(self.attempt.failed, error)
        self._settle(0.0)  # the provider did not answer: nothing to pay
        self._breaker_report(error)

    def completed(self, response: Any) -> None:
        """A whole response arrived (for a raw response: its parsed body)."""
        assert self.attempt is not None
        self._breaker_report(None)
        self._end(guarded(self.attempt.response, response, default=None))
        self._settle(self.attempt.cost)

    def observer(self, response: Any) -> StreamObserver:
        """The observer of a stream this attempt opened (``response``: its HTTP response)."""
        assert self.attempt is not None and self.api.stream_reader is not None
        reader = self.api.stream_reader(self.hide_usage_chunk)
        return StreamObserver(self.attempt, response, reader, self.settings.stream_idle_timeout_s)

    def handed_over(self, observer: StreamObserver) -> None:
        """From here on the stream is the caller's: it reports once, when it ends."""
        observer.on_end = self._stream_ended

    def _stream_ended(self, error: BaseException | None, kind: str | None) -> None:
        self._breaker_report(error)
        self._end(kind)
        assert self.attempt is not None
        self._settle(self.attempt.cost)  # unknown when the stream broke off: the worst case stays

    def _end(self, error: str | None) -> None:
        guarded(self.telemetry.end, self.alias, self._index > 0, error)

    def _breaker_report(self, error: BaseException | None) -> None:
        """Tell the current endpoint's breaker how it went: a retryable error is a
        failure, anything else (an error that is not retryable too) an answer.
        A success of a clean breaker changes nothing, so it is not sent."""
        failed = error is not None and is_retryable(error)
        if not failed and self._clean:
            return
        self._clean = not failed
        key, alias, settings = _breaker_key(self.endpoint), self.alias, self.settings
        if self.is_async:  # from a sync callback (an attempt's end, a stream's): the report waits for nobody
            report = (
                self.store.abreaker_failure(
                    key, settings.breaker_failures, settings.breaker_cooldown_s, _budgets.clock()
                )
                if failed
                else self.store.abreaker_success(key)
            )
            in_background(self._reported(alias, report))
            return
        try:
            if failed:
                moved = self.store.breaker_failure(
                    key, settings.breaker_failures, settings.breaker_cooldown_s, _budgets.clock()
                )
            else:
                moved = self.store.breaker_success(key)
        except Exception:  # the state server is gone (closed mode): the call's own outcome stands
            _log.warning("otel-llm: could not report to the breaker of alias %r", alias, exc_info=True)
            return
        self._breaker_moved(alias, moved)

    async def _reported(self, alias: str, report: Awaitable[BreakerState | None]) -> None:
        try:
            moved = await report
        except Exception:
            _log.warning("otel-llm: could not report to the breaker of alias %r", alias, exc_info=True)
            return
        self._breaker_moved(alias, moved)

    def _breaker_moved(self, alias: str, state: BreakerState | None) -> None:
        if state is not None:
            guarded(self.telemetry.breaker, alias, state)


class _CircuitOpen(Exception):
    """The alias's breaker is open and a later alias can take the call: skip it, no attempt made."""


@lru_cache(maxsize=1024)
def _breaker_key(endpoint: Endpoint) -> str:
    """Breakers are per endpoint (provider, server, deployment or model): aliases of one share what they learn."""
    return f"{endpoint.provider}|{endpoint.server or ''}|{endpoint.request_model}"


def _continues(body: Mapping[str, Any], api: Api) -> bool:
    return any(body.get(name) for name in api.stateful_arguments)


def _request_usage(body: dict[str, Any], options: FinalRequestOptions) -> bool:
    """Ask a chat stream for its usage chunk; whether to hide it (the caller did not ask).

    A raw response gives the caller the provider's bytes: its stream is asked for nothing more.
    """
    headers = options.headers
    if not isinstance(headers, openai.NotGiven) and headers.get(RAW_RESPONSE_HEADER):
        return False
    stream_options = body.get("stream_options")
    stream_options = stream_options if isinstance(stream_options, Mapping) else {}
    if stream_options.get("include_usage"):
        return False
    body["stream_options"] = {**stream_options, "include_usage": True}
    return True


def run_sync(call: LogicalCall, cast_to: Any, stream: bool, stream_cls: Any) -> Any:
    while True:
        try:
            try:
                return _attempt_sync(call, cast_to, stream, stream_cls)  # most calls end here
            except BaseException as error:
                failed: BaseException | None = error
            # Building a tenacity policy costs more than the rest of a call's path,
            # and most calls need none: only a failure builds one. Its attempt 1
            # is that failure again, so its stop, wait and Retry-After decide from
            # what really happened.
            for attempt in Retrying(**call.retrying()):
                with attempt:
                    if failed is not None:
                        replay, failed = failed, None
                        raise replay
                    return _attempt_sync(call, cast_to, stream, stream_cls)
        except BaseException as error:
            if not call.fall_back(error):
                raise


def _attempt_sync(call: LogicalCall, cast_to: Any, stream: bool, stream_cls: Any) -> Any:
    provider = sync_client(call.alias, call.endpoint, call.settings.http_spans)
    call.before_attempt()
    call.start_attempt(provider)
    try:
        result = provider.client.request(cast_to, call.options, stream=stream, stream_cls=stream_cls)
        raw = isinstance(result, _RAW_RESPONSES)
        if not stream:
            response = result.parse() if raw else result
        elif raw:  # its bytes are the caller's: nothing is read ahead
            observer = call.observer(result.http_response)
            handed: Any = ObservedRawResponse(result, observer, ObservedStream)
        else:
            observer = call.observer(result.response)
            handed = ObservedStream(result, observer).read_ahead()
    except BaseException as error:
        call.attempt_failed(error)
        raise
    finally:
        call.end_attempt()
    # What is recorded from here on is ours: it cannot fail the attempt.
    if not stream:
        call.completed(response)
        return result
    call.handed_over(observer)
    return handed


async def run_async(call: LogicalCall, cast_to: Any, stream: bool, stream_cls: Any) -> Any:
    call.is_async = True
    while True:
        try:
            try:
                return await _attempt_async(call, cast_to, stream, stream_cls)
            except BaseException as error:
                failed: BaseException | None = error
            async for attempt in AsyncRetrying(**call.retrying()):  # as in run_sync
                with attempt:
                    if failed is not None:
                        replay, failed = failed, None
                        raise replay
                    return await _attempt_async(call, cast_to, stream, stream_cls)
        except BaseException as error:
            if not call.fall_back(error):
                raise


async def _attempt_async(call: LogicalCall, cast_to: Any, stream: bool, stream_cls: Any) -> Any:
    provider = async_client(call.alias, call.endpoint, call.settings.http_spans)
    await call.abefore_attempt()
    call.start_attempt(provider)
    try:
        result = await provider.client.request(cast_to, call.options, stream=stream, stream_cls=stream_cls)
        raw = isinstance(result, _RAW_RESPONSES)
        if not stream:
            response = result.parse() if raw else result
            if inspect.isawaitable(response):
                response = await response
        elif raw:
            observer = call.observer(result.http_response)
            handed: Any = ObservedRawResponse(result, observer, AsyncObservedStream)
        else:
            observer = call.observer(result.response)
            handed = await AsyncObservedStream(result, observer).read_ahead()
    except BaseException as error:
        call.attempt_failed(error)
        raise
    finally:
        call.end_attempt()
    if not stream:
        call.completed(response)
        return result
    call.handed_over(observer)
    return handed
