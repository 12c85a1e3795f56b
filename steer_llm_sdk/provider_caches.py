"""Provider-side prompt caches that a call creates before it is sent: Gemini's explicit
``cachedContents``, for ``cache_prompt=`` (README "Prompt caching").

Gemini does not take cache markers: a long prefix is put in a cache first
(``POST /v1beta/cachedContents`` with the system instruction, the tools, the tool
config and the conversation's earlier turns), and the request then names the cache
(``cachedContent``) and carries only what follows; the API refuses a request that
names a cache and also sets ``systemInstruction``, ``tools`` or ``toolConfig``, so
those move into the cache.

- **What is cached**: the system instruction, tools and tool config, and every turn
  but the last, once that prefix passes the model's minimum (a cautious estimate of
  the tokens); a shorter one is never cached (the API refuses it).
- **Reused while alive**: the longest live cache of this client that holds a prefix
  of the request (a conversation keeps using the cache made at its first turn); a new
  one only when none is live. Concurrent calls with one prefix create it once.
- **Cost**: the call that made a cache reports its tokens as ``cache_creation_tokens``
  (and in ``prompt_tokens``: Google bills them once, at the input price, when the cache
  is made), as Anthropic reports a cache write; storage (per hour) is not priced.
- **Lifetime**: ``"auto"`` 5 minutes, ``"long"`` 1 hour (Gemini bills storage by the
  hour); one that would expire within 15 s is not used. ``client.aclose()`` deletes
  the caches the client made that still live; the provider deletes the rest at expiry.
- **Never fails a call**: a cache the API will not create (too short, a model
  without explicit caching, an error, a timeout: 30 s at most) is said in
  ``response.warnings`` and the prompt is sent whole; a prefix refused with a 400 is
  not tried again while it would have lived. A cache that is gone when the call
  arrives (403 "CachedContent not found") is dropped and the call sent once more
  without it (``streaming/attempts.py``).
- On Vertex AI the caches live under the call's project and location
  (``{base}/cachedContents``, the model as ``projects/…/publishers/google/models/…``),
  made with the call's Google credentials.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson

from .errors import BadRequestError, SteerError
from .providers.base import CachedPrefix
from .providers.caching import estimate_tokens

if TYPE_CHECKING:
    from .streaming.call import Call

logger = logging.getLogger("steer_llm_sdk")

__all__ = ["ProviderCaches", "gemini_min_tokens"]

_TTL = {"auto": 300, "long": 3600}
_MARGIN = 15.0  # a cache this close to its expiry is not used: the call may outlive it
_CREATE_TIMEOUT = 30.0
_RETRY_AFTER_FAILURE = 30.0  # a create that failed (not refused) is tried again after
_HEAD = ("systemInstruction", "tools", "toolConfig")
_VERTEX_BASE = re.compile(r"/v1/(projects/[^/]+/locations/[^/]+)/?$")
# The shortest prefix Gemini caches explicitly, by model (caching docs, 2026: they
# have said 1,024 to 4,096 by model and date; the larger figure where they disagree).
_MINIMUMS = (("2.5-flash", 2048), ("2.0-flash", 4096))
_DEFAULT_MINIMUM = 4096


def gemini_min_tokens(model: str) -> int:
    name = model.lower()
    return next((m for fragment, m in _MINIMUMS if fragment in name), _DEFAULT_MINIMUM)


class _Cache:
    """One cache the client made: where it lives, until when (monotonic seconds)."""

    __slots__ = ("base_url", "expires", "key", "name", "path", "signer", "spec", "tokens")

    def __init__(self, name: str, expires: float, spec: Any, base_url: str, key: str | None):
        self.name = name
        self.expires = expires
        self.spec = spec
        self.base_url = base_url
        self.key = key  # the API key it was made with (needed to delete it); never shown
        self.tokens = 0
        self.path = ""  # its path from base_url (for DELETE)
        self.signer: Any = None

    def __repr__(self) -> str:
        return f"<cache {self.name}>"


class ProviderCaches:
    """A client's provider-side prompt caches (one registry per client)."""

    __slots__ = ("_live", "_pending", "_refused")

    def __init__(self) -> None:
        self._live: dict[str, _Cache] = {}  # prefix hash → live cache
        self._pending: dict[str, asyncio.Future[_Cache | None]] = {}
        self._refused: dict[str, float] = {}  # prefix hash → not tried again before

    def hook(self, codec: Any, request: Any) -> Any:
        """The before-send hook for a call, or None when it needs none."""
        if (
            request.cache_prompt is None
            or not getattr(codec, "cached_contents", False)
            or "cachedContent" in request.extra_body
            or "cached_content" in request.extra_body
        ):
            return None
        return self.before_send

    async def before_send(self, call: Call, deadline: float | None) -> None:
        """Find or create the cache of the call's prefix; the request then names it."""
        request = call.request
        codec = call.codec_factory()
        body = codec.encode(replace(request, stream=False), None).json
        contents = body.get("contents") or []
        head = {k: body[k] for k in _HEAD if k in body}
        held = len(contents) - 1  # every turn but the last
        if held < 0:
            return
        now = time.monotonic()
        seed = orjson.dumps(
            [call.base_url, request.model, _fingerprint(call.api_key), head],
            option=orjson.OPT_SORT_KEYS,
        )
        chain = [hashlib.sha256(seed).hexdigest()]
        for content in contents[:held]:
            piece = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
            chain.append(hashlib.sha256(chain[-1].encode() + piece).hexdigest())
        for count in range(held, -1, -1):  # the longest live cache holding a prefix
            live = self._live.get(chain[count])
            if live is not None and live.expires - _MARGIN > now:
                call.request = replace(request, provider_cache=self._prefix(live, count, chain))
                return
        key = chain[held]
        if self._refused.get(key, 0.0) > now:
            return
        size = estimate_tokens(head) + estimate_tokens(contents[:held])
        if size < gemini_min_tokens(request.model):
            return
        pending = self._pending.get(key)
        mine = pending is None
        if pending is None:
            ttl = _TTL.get(str(request.cache_prompt), _TTL["auto"])
            pending = asyncio.ensure_future(
                self._create(call, key, head, contents[:held], ttl, deadline)
            )
            self._pending[key] = pending
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        made = await asyncio.shield(pending)
        if made is not None:
            call.request = replace(request, provider_cache=self._prefix(made, held, chain))
            if mine:  # the making is billed (its tokens at the input price) with this call
                call.cache_written = made.tokens

    def _prefix(self, cache: _Cache, count: int, chain: list[str]) -> CachedPrefix:
        key = chain[count]

        def forget() -> None:
            if self._live.get(key) is cache:
                del self._live[key]

        return CachedPrefix(cache.name, count, forget)

    async def _create(
        self,
        call: Call,
        key: str,
        head: dict[str, Any],
        contents: list[Any],
        ttl: int,
        deadline: float | None,
    ) -> _Cache | None:
        from .uploads import ProviderHTTP

        loop = asyncio.get_running_loop()
        budget = (
            _CREATE_TIMEOUT if deadline is None else min(_CREATE_TIMEOUT, deadline - loop.time())
        )
        collection, model, parent = _resources(call.base_url, call.request.model)
        body: dict[str, Any] = {"model": model, **head, "ttl": f"{ttl}s"}
        if contents:
            body["contents"] = contents
        body["displayName"] = f"steer-{key[:24]}"
        started = time.monotonic()
        try:
            if budget <= 0:
                raise TimeoutError
            http = ProviderHTTP(
                call.provider,
                call.base_url,
                call.api_key,
                call.transport,
                budget,
                what="creating the prompt cache",
                api="cachedContents API",
                signer=call.signer,
            )
            made = await http.json(
                "POST",
                collection,
                {"content-type": "application/json"},
                orjson.dumps(body),
            )
            name = made.get("name")
            if not isinstance(name, str) or not name.startswith(f"{parent}cachedContents/"):
                raise BadRequestError(f"the API answered without a cache name: {made!r:.200}")
        except (SteerError, TimeoutError) as exc:
            refused = isinstance(exc, BadRequestError)
            self._refused[key] = started + (ttl if refused else _RETRY_AFTER_FAILURE)
            message = getattr(exc, "message", None) or "no answer in time"
            _warn(call, f"cache_prompt: Gemini made no prompt cache ({message}); sent whole")
            return None
        self._prune(time.monotonic())
        cache = _Cache(name, started + ttl, call.provider, call.base_url, call.api_key)
        cache.path = collection.rpartition("/")[0] + "/" + name.removeprefix(parent)
        cache.signer = call.signer
        tokens = (made.get("usageMetadata") or {}).get("totalTokenCount")
        cache.tokens = tokens if isinstance(tokens, int) else 0
        self._live[key] = cache
        logger.info("prompt cache %s made (%d tokens, %d s)", name, cache.tokens, ttl)
        return cache

    def _prune(self, now: float) -> None:
        """Forget the caches that ended and the refusals that ran out (a long-lived
        client sees many prefixes come and go)."""
        for key in [k for k, c in self._live.items() if c.expires <= now]:
            del self._live[key]
        for key in [k for k, until in self._refused.items() if until <= now]:
            del self._refused[key]

    async def aclose(self, transport: Any) -> None:
        """Delete the caches this client made that still live (10 s at most)."""
        from .uploads import ProviderHTTP

        now = time.monotonic()
        alive = [c for c in set(self._live.values()) if c.expires > now]
        self._live.clear()
        self._refused.clear()

        async def delete(cache: _Cache) -> None:
            http = ProviderHTTP(
                cache.spec,
                cache.base_url,
                cache.key,
                transport,
                10.0,
                what="deleting the prompt cache",
                api="cachedContents API",
                signer=cache.signer,
            )
            try:
                await http.send("DELETE", cache.path, {})
            except SteerError as exc:
                logger.info("prompt cache %s not deleted: %s", cache.name, exc.message)

        if alive:
            await asyncio.gather(*(delete(c) for c in alive))


def _resources(base_url: str, model: str) -> tuple[str, str, str]:
    """Where caches are made (a path from ``base_url``), the model's resource name,
    and the parent a cache's name starts with: the Gemini API's, or Vertex AI's
    under the base URL's project and location."""
    model = model.removeprefix("models/")
    vertex = _VERTEX_BASE.search(urlsplit(base_url).path)
    if vertex is None:
        return "v1beta/cachedContents", f"models/{model}", ""
    parent = vertex.group(1)
    return "cachedContents", f"{parent}/publishers/google/models/{model}", parent + "/"


def _fingerprint(key: str | None) -> str:
    """Which key made a cache (a cache belongs to the key's project), not the key."""
    return hashlib.sha256((key or "").encode()).hexdigest()[:16]


def _warn(call: Call, message: str) -> None:
    logger.warning("%s (%s)", message, call.model)
    call.notes.append(message)
