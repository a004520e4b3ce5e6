"""otel-llm: choose, call and watch the LLMs of a Python service.

Each API of a service gets its own model (request > ``X-LLM-Model`` header >
``LLM_MODEL_<API>`` > ``LLM_MODEL_DEFAULT``), called through a drop-in
``openai`` client.
"""

from ._client import (
    AsyncAzureLLMClient,
    AsyncLLMClient,
    AzureLLMClient,
    LLMClient,
    get_async_llm_client_smart,
    get_llm_client_smart,
)
from ._endpoints import AzureEndpoint, OpenAIEndpoint
from ._errors import (
    BudgetExceededError,
    ConfigError,
    ModelNotAllowedError,
    StateUnavailableError,
    StreamTruncatedError,
    UnknownModelError,
)
from ._live import get_settings, reload_settings
from ._providers import close_clients
from ._selection import Headers, Selection, SelectionSource, select_model
from ._settings import Budget, LLMSettings, Price
from ._setup import configure_telemetry
from ._state import reset_breakers
from ._version import __version__

__all__ = [
    "AsyncAzureLLMClient",
    "AsyncLLMClient",
    "AzureEndpoint",
    "AzureLLMClient",
    "Budget",
    "BudgetExceededError",
    "ConfigError",
    "Headers",
    "LLMClient",
    "LLMSettings",
    "ModelNotAllowedError",
    "OpenAIEndpoint",
    "Price",
    "Selection",
    "SelectionSource",
    "StateUnavailableError",
    "StreamTruncatedError",
    "UnknownModelError",
    "__version__",
    "close_clients",
    "configure_telemetry",
    "get_async_llm_client_smart",
    "get_llm_client_smart",
    "get_settings",
    "reload_settings",
    "reset_breakers",
    "select_model",
]
