"""Where an alias lives: one entry of ``LLM_MODELS``.

Each provider knows how to reach itself (which SDK client, which model name
goes on the wire), so the rest of the package never branches on the provider.
"""

from __future__ import annotations

from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal

import openai
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

__all__ = ["AzureEndpoint", "Endpoint", "OpenAIEndpoint", "key_env", "state_home"]

_Name = Annotated[str, Field(min_length=1)]


class _EndpointBase(BaseModel):
    # Unknown keys are rejected so that a misspelt field (or a key pasted where
    # `api_key_env` belongs) fails at load instead of being silently dropped.
    model_config = ConfigDict(frozen=True, extra="forbid")

    model: _Name
    """Canonical model name, used for pricing."""
    api_key_env: _Name | None = None
    """Name of the environment variable that holds the key (never the key)."""

    # Endpoints key the per-call caches (clients, prices, attribute sets):
    # hash them once, not field by field on every lookup.
    @cached_property
    def _hash(self) -> int:
        return hash((type(self), *self.__dict__.values()))

    def __hash__(self) -> int:
        return self._hash


class OpenAIEndpoint(_EndpointBase):
    """Any OpenAI-compatible server; ``base_url`` unset means the SDK's default."""

    provider: Literal["openai"] = "openai"
    base_url: HttpUrl | None = None

    default_key_env: ClassVar[str] = "OPENAI_API_KEY"
    otel_provider_name: ClassVar[str] = "openai"
    sdk_clients: ClassVar[tuple[type[openai.OpenAI], type[openai.AsyncOpenAI]]] = (openai.OpenAI, openai.AsyncOpenAI)

    @property
    def request_model(self) -> str:
        return self.model

    @property
    def client_options(self) -> dict[str, Any]:
        return {"base_url": str(self.base_url) if self.base_url else None}

    @property
    def url(self) -> str:
        return str(self.base_url) if self.base_url else "(openai SDK default, OPENAI_BASE_URL)"

    @property
    def server(self) -> str | None:
        return str(self.base_url) if self.base_url else None


class AzureEndpoint(_EndpointBase):
    """An Azure OpenAI deployment; the deployment name is what is sent."""

    provider: Literal["azure"]
    endpoint: HttpUrl
    deployment: _Name
    api_version: _Name

    default_key_env: ClassVar[str] = "AZURE_OPENAI_API_KEY"
    otel_provider_name: ClassVar[str] = "azure.ai.openai"
    sdk_clients: ClassVar[tuple[type[openai.OpenAI], type[openai.AsyncOpenAI]]] = (
        openai.AzureOpenAI,
        openai.AsyncAzureOpenAI,
    )

    @property
    def request_model(self) -> str:
        return self.deployment

    @property
    def client_options(self) -> dict[str, Any]:
        # No deployment here: the SDK puts the sent model into the URL, so every
        # deployment of one resource shares a client and its connection pool.
        return {"azure_endpoint": str(self.endpoint), "api_version": self.api_version}

    @property
    def url(self) -> str:
        return f"{str(self.endpoint).rstrip('/')}/openai/deployments/{self.deployment}"

    @property
    def server(self) -> str | None:
        return str(self.endpoint)


Endpoint = Annotated[OpenAIEndpoint | AzureEndpoint, Field(discriminator="provider")]
"""An entry of ``LLM_MODELS``, told apart by its ``provider`` field."""


def key_env(endpoint: OpenAIEndpoint | AzureEndpoint) -> str:
    """The variable the key is read from: the configured one or the SDK's own."""
    return endpoint.api_key_env or endpoint.default_key_env


def state_home(endpoint: OpenAIEndpoint | AzureEndpoint) -> tuple[str, str | None, str]:
    """Where a provider keeps stored responses and conversations: its server and account (key variable)."""
    return endpoint.provider, endpoint.server, key_env(endpoint)
