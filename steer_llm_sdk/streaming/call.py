"""What one call needs, resolved by the client before the pipeline runs it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..models.streaming import StreamingOptions

if TYPE_CHECKING:
    from ..auth import Signer
    from ..catalog import ProviderSpec
    from ..providers.base import ChatRequest
    from ..providers.codec import Codec
    from ..transport.http import Transport
    from .observe import CallObserver

__all__ = ["Call"]


@dataclass(slots=True)
class Call:
    """Everything one call needs, resolved by the client."""

    provider: ProviderSpec
    base_url: str  # "" until resolve_base_url() gives it (a local server may start)
    api_key: str | None
    model: str  # the provider's name for the model
    request: ChatRequest
    options: StreamingOptions
    codec_factory: Callable[..., Codec]
    transport: Transport
    price_overrides: dict[str, Any] | None = None
    context: dict[str, Any] = field(default_factory=dict)
    resolve_base_url: Callable[[], Awaitable[str]] | None = None  # when base_url is ""
    can_resume: bool = False  # the server continues a final assistant message
    record: bool = False  # stream_events(): the codec records typed parts
    output: Any = None  # an output.OutputSpec when output= was given
    cache: Any = None  # the client's response cache (cache.CacheStore), unless cache=False
    cache_watch: Any = None  # the client's ledger.CacheWatch (prompt-cache health)
    signer: Signer | None = None  # per-request credentials (auth/), applied after encode
    observer: CallObserver | None = None  # telemetry: start(record) at the call, end() once
    # Before-send hooks, awaited once when the call starts (after its base URL, before
    # the first attempt) with (call, deadline): resolve the request's files (download
    # URLs; upload large data). Empty for a call that needs none.
    before_send: tuple[Callable[[Call, float | None], Awaitable[None]], ...] = ()
    notes: list[str] = field(default_factory=list)  # what a before-send hook could not do
    cache_written: int = 0  # tokens a before-send hook wrote to a provider's prompt cache
    routes: Any = None  # a routing.Chain when model= is a route (README, "Routes")
    pricing_model: str | None = None  # the model priced (an Azure deployment's model)
