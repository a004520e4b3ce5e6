"""What a call cost, in US dollars.

Prices come from ``genai-prices`` (a maintained price list shipped with the
package: no network at import or at run time), looked up by the endpoint's
canonical model, and ``LLM_PRICES`` overrides them. A price is resolved once
per model; the per-call work is a few multiplications. A model with no known
price gets no cost and one warning: a cost is never guessed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache
from typing import Any

from ._derived import derived
from ._endpoints import AzureEndpoint, Endpoint
from ._settings import LLMSettings

__all__ = ["CostFunction", "cost_function"]

_log = logging.getLogger("otel_llm")

CostFunction = Callable[[int, int, int], float]
"""``cost(input_tokens, output_tokens, cached_input_tokens) -> USD``; cached tokens are part of input tokens."""

_PER_TOKEN = 1e-6  # prices are per million tokens
_warned: set[str] = set()


def cost_function(alias: str, endpoint: Endpoint, settings: LLMSettings) -> CostFunction | None:
    """How to price a call to ``alias``, or ``None`` when its price is unknown (memoised per settings)."""
    costs = derived(settings).costs
    try:
        return costs[alias]
    except KeyError:
        pass
    override = settings.prices.get(alias) or settings.prices.get(endpoint.model)
    function = costs[alias] = (
        _flat(override.input, override.output, override.cached_input) if override else _library_cost(endpoint)
    )
    return function


@cache
def _library_cost(endpoint: Endpoint) -> CostFunction | None:
    function = _from_library(endpoint)
    if function is None and endpoint.model not in _warned:
        _warned.add(endpoint.model)
        _log.warning(
            "otel-llm: no price known for model %r: its calls get no cost; set LLM_PRICES to price it",
            endpoint.model,
        )
    return function


def _flat(input_price: float, output_price: float, cached_price: float | None) -> CostFunction:
    per_input = input_price * _PER_TOKEN
    per_output = output_price * _PER_TOKEN
    per_cached = per_input if cached_price is None else cached_price * _PER_TOKEN

    def cost(input_tokens: int, output_tokens: int, cached_tokens: int) -> float:
        return (input_tokens - cached_tokens) * per_input + cached_tokens * per_cached + output_tokens * per_output

    return cost


def _from_library(endpoint: Endpoint) -> CostFunction | None:
    # Imported on first use: loading the price list takes a fifth of a second.
    import genai_prices
    from genai_prices.types import TieredPrices

    usage = genai_prices.Usage(input_tokens=1)
    # (provider_id, provider_api_url) to try in turn: a known OpenAI-compatible
    # host (Groq, Together, ...) names its provider by its URL.
    lookups: list[tuple[str | None, str | None]] = []
    if isinstance(endpoint, AzureEndpoint):
        lookups.append(("azure", None))
    else:
        if endpoint.base_url is not None:
            lookups.append((None, str(endpoint.base_url)))
        lookups.append(("openai", None))
    for provider_id, provider_api_url in lookups:
        try:
            calculation = (
                genai_prices.calc_price(usage, endpoint.model, provider_id=provider_id)
                if provider_id
                else genai_prices.calc_price(usage, endpoint.model, provider_api_url=provider_api_url)
            )
        except LookupError:
            continue
        model_price = calculation.model_price
        input_price, output_price, cached_price = (
            model_price.input_mtok,
            model_price.output_mtok,
            model_price.cache_read_mtok,
        )
        if (
            isinstance(input_price, TieredPrices)
            or isinstance(output_price, TieredPrices)
            or isinstance(cached_price, TieredPrices)
        ):
            return _tiered(model_price)
        if input_price is None:
            return None
        # Embeddings have no output price.
        return _flat(
            float(input_price), float(output_price or 0), None if cached_price is None else float(cached_price)
        )
    return None


def _tiered(model_price: Any) -> CostFunction:
    """Prices that change with the prompt size: the library computes each call (slower, exact)."""
    import genai_prices

    def cost(input_tokens: int, output_tokens: int, cached_tokens: int) -> float:
        usage = genai_prices.Usage(
            input_tokens=input_tokens, output_tokens=output_tokens, cache_read_tokens=cached_tokens
        )
        return float(model_price.calc_price(usage)["total_price"])

    return cost
