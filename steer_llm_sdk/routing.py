"""Routes: fallback chains, load balancing and cooldowns (README, "Routes").

``model=["claude-sonnet-4-5", Route("gpt-4o", temperature=0.2), Balance([...])]``
or a name of ``SteerLLMClient(routes={...})``. A :class:`Chain` is one call's walk
along its route: the attempt state machine (``streaming/attempts.py``) asks it for
the first deployment (``start``), for the next one when an attempt failed before
anything reached the caller (``next``), and tells it how the call ended
(``finish``). A :class:`Router` belongs to a client and holds what its calls share:
the named routes, one :class:`Deployment` per model name (circuit breaker, calls in
flight, first-token latency, rate-limit budget). Choosing a deployment looks at the
entries of one route only (a dict lookup each): O(1) in the number of calls.

Nothing here runs per chunk: a call with a one-entry route does per chunk exactly
what a plain call does.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import (
    APIStatusError,
    AuthenticationError,
    ConfigurationError,
    ConnectionError,
    ContextWindowError,
    CooldownError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    SteerError,
    TimeoutError,
    TotalTimeoutError,
)
from .results import Restart, RouteAttempt, StreamingResponse

if TYPE_CHECKING:
    from .models.streaming import StreamingOptions
    from .providers.base import StreamState
    from .streaming.call import Call

__all__ = [
    "STRATEGIES",
    "Balance",
    "Chain",
    "Cooldown",
    "Deployment",
    "Route",
    "Router",
    "budget_wait",
    "is_health_failure",
]

logger = logging.getLogger("steer_llm_sdk")

STRATEGIES = ("least-busy", "weighted", "latency", "round-robin")
# Call arguments a route entry cannot override (they are the call's own).
_RESERVED = frozenset({"model", "messages", "streaming_options", "fallback_on", "prompt"})
# Errors that say the deployment is unwell: they count toward its cooldown.
_UNWELL = (
    ConnectionError,
    TimeoutError,
    RateLimitError,
    OverloadedError,
    ServerError,
    AuthenticationError,
    PermissionDeniedError,
)
# Errors that move a call to its route's next entry (besides fallback_on=).
_TRIGGERS = (*_UNWELL, ContextWindowError, CooldownError)


@dataclass(frozen=True, slots=True)
class Cooldown:
    """A circuit breaker per deployment: after ``failures`` failures within ``window``
    seconds it is skipped for ``seconds``; then one call probes it (success closes
    the breaker, failure opens it again)."""

    failures: int = 3
    window: float = 30.0
    seconds: float = 30.0

    def __post_init__(self) -> None:
        n = self.failures
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigurationError(f"Cooldown(failures={n!r}) must be a whole number >= 1")
        for name in ("window", "seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ConfigurationError(f"Cooldown({name}={value!r}) must be seconds > 0")


class Route:
    """One entry of a route: a model name with its own call parameters
    (``Route("gpt-4o", temperature=0.2, max_tokens=800)``), which override the
    call's; ``cooldown=`` its own breaker settings."""

    __slots__ = ("cooldown", "model", "params")

    def __init__(self, model: str, *, cooldown: Cooldown | None = None, **params: Any) -> None:
        if not isinstance(model, str) or not model.strip():
            raise ConfigurationError(f"Route() needs a model name, not {model!r}")
        bad = sorted(_RESERVED.intersection(params))
        if bad:
            raise ConfigurationError(
                f"Route({model!r}) cannot set {', '.join(bad)}: those are the call's own "
                "(give streaming options to the call or the client)"
            )
        if cooldown is not None and not isinstance(cooldown, Cooldown):
            raise ConfigurationError(f"Route({model!r}, cooldown=...) must be a Cooldown")
        self.model = model
        self.params = params
        self.cooldown = cooldown

    def __repr__(self) -> str:  # parameter names only: values may hold anything
        extra = "".join(f", {name}=..." for name in self.params)
        return f"Route({self.model!r}{extra})"


class Balance:
    """Deployments of one model used together as one route entry:
    ``Balance(["azure/gpt4o-east", "azure/gpt4o-west", "gpt-4o"], strategy=...)``.

    ``strategy``: ``"least-busy"`` (fewest calls in flight from this client),
    ``"round-robin"``, ``"weighted"`` (``weights=``, smooth weighted round-robin) or
    ``"latency"`` (lowest measured first-token latency; unmeasured first). A
    deployment cooling down, or whose rate-limit headers said it has no budget left,
    is skipped while another can serve. When one fails, the call tries the others
    before the route's next entry."""

    __slots__ = ("_current", "_next", "cooldown", "members", "strategy", "weights")

    def __init__(
        self,
        models: Sequence[str | Route],
        *,
        strategy: str = "least-busy",
        weights: Sequence[float] | None = None,
        cooldown: Cooldown | None = None,
    ) -> None:
        if isinstance(models, str) or not models:
            raise ConfigurationError("Balance() needs a list of model names or Route entries")
        self.members = tuple(_route(m, "Balance()") for m in models)
        if strategy not in STRATEGIES:
            raise ConfigurationError(
                f"Balance(strategy={strategy!r}) is not known: use one of "
                + ", ".join(repr(s) for s in STRATEGIES)
            )
        self.strategy = strategy
        if weights is None:
            weights = [1.0] * len(self.members)
        elif len(weights) != len(self.members) or not all(
            isinstance(w, int | float) and not isinstance(w, bool) and w > 0 for w in weights
        ):
            raise ConfigurationError("Balance(weights=...) needs one number > 0 per model")
        self.weights = tuple(float(w) for w in weights)
        if cooldown is not None and not isinstance(cooldown, Cooldown):
            raise ConfigurationError("Balance(cooldown=...) must be a Cooldown")
        self.cooldown = cooldown
        self._next = 0  # round-robin position
        self._current = [0.0] * len(self.members)  # smooth weighted round-robin

    def __repr__(self) -> str:
        return f"Balance({[m.model for m in self.members]!r}, strategy={self.strategy!r})"

    def choose(self, candidates: list[tuple[int, Deployment]]) -> int:
        """The index (into ``members``) of the candidate this strategy picks."""
        strategy = self.strategy
        if len(candidates) == 1:
            return candidates[0][0]
        if strategy == "weighted":
            current = self._current
            total = 0.0
            best = candidates[0][0]
            for i, _ in candidates:
                current[i] += self.weights[i]
                total += self.weights[i]
                if current[i] > current[best]:
                    best = i
            current[best] -= total
            return best
        start = self._next
        self._next = start + 1
        count = len(self.members)
        if strategy == "round-robin":
            ordered = sorted(candidates, key=lambda c: (c[0] - start) % count)
            return ordered[0][0]
        # least-busy / latency: the lowest figure; ties go round-robin
        if strategy == "least-busy":
            return min(candidates, key=lambda c: (c[1].in_flight, (c[0] - start) % count))[0]
        return min(candidates, key=lambda c: (c[1].latency or 0.0, (c[0] - start) % count))[0]


Entry = Route | Balance


def _route(value: Any, where: str) -> Route:
    if isinstance(value, Route):
        return value
    if isinstance(value, str) and value.strip():
        return Route(value)
    raise ConfigurationError(
        f"{where} takes model names and Route(...) entries, not {type(value).__name__}"
    )


def entries_of(model: Any) -> tuple[Entry, ...]:
    """A route as written (a list, a Route, a Balance) → its entries, checked."""
    if isinstance(model, Route | Balance):
        return (model,)
    if isinstance(model, str):
        return (Route(model),)
    if isinstance(model, list | tuple):
        if not model:
            raise ConfigurationError("model=[] is empty: give one model name or more")
        return tuple(m if isinstance(m, Balance) else _route(m, "model=[...]") for m in model)
    raise ConfigurationError(
        "model must be a name, a list of names or Route/Balance entries, "
        f"not {type(model).__name__}"
    )


FallbackOn = Callable[[BaseException], Any] | tuple[type[BaseException], ...] | None


def check_fallback_on(value: Any) -> FallbackOn:
    if value is None or (callable(value) and not isinstance(value, type)):
        return value
    if isinstance(value, type) and issubclass(value, BaseException):
        return (value,)
    if isinstance(value, tuple) and all(
        isinstance(v, type) and issubclass(v, BaseException) for v in value
    ):
        return value
    raise ConfigurationError(
        "fallback_on must be a tuple of error classes or a function taking the error"
    )


def is_health_failure(exc: BaseException) -> bool:
    """Whether an error says the deployment is unwell (it counts toward a cooldown)."""
    exc = getattr(exc, "cause", None) or exc
    if isinstance(exc, TotalTimeoutError):
        return False
    if isinstance(exc, _UNWELL):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(exc, APIStatusError) and status is not None and status >= 500


class Deployment:
    """What a client's calls share about one model name: its breaker, the calls in
    flight, its first-token latency (moving average) and its rate-limit budget."""

    __slots__ = (
        "cooldown",
        "failures",
        "in_flight",
        "latency",
        "name",
        "no_budget_until",
        "open_until",
        "probing",
    )

    def __init__(self, name: str, cooldown: Cooldown) -> None:
        self.name = name
        self.cooldown = cooldown
        self.failures: deque[float] = deque(maxlen=cooldown.failures)
        self.open_until = 0.0  # perf_counter; 0: closed
        self.probing = False  # half-open: one call is probing it
        self.in_flight = 0
        self.latency: float | None = None
        self.no_budget_until = 0.0

    def cooling(self, now: float) -> bool:
        until = self.open_until
        return until > now or (until != 0.0 and self.probing)

    def failed(self, now: float) -> None:
        cooldown = self.cooldown
        if self.probing or self.open_until:  # the probe failed: open again
            self.probing = False
            self.open_until = now + cooldown.seconds
            return
        failures = self.failures
        failures.append(now)
        if len(failures) == cooldown.failures and now - failures[0] <= cooldown.window:
            failures.clear()
            self.open_until = now + cooldown.seconds
            logger.warning(
                "route: %s failed %d times within %g s: cooling down for %g s",
                self.name,
                cooldown.failures,
                cooldown.window,
                cooldown.seconds,
            )

    def succeeded(self) -> None:
        if self.open_until:
            logger.info("route: %s answered its probe: cooldown over", self.name)
        self.open_until = 0.0
        self.probing = False
        self.failures.clear()

    def until_text(self, now: float) -> str:
        wait = max(0.0, self.open_until - now) if self.open_until > now else 0.0
        wall = time.strftime("%H:%M:%S UTC", time.gmtime(time.time() + wait))
        if self.open_until <= now:
            return f"{self.name} (its probe is in flight)"
        return f"{self.name} until {wall} (in {wait:.1f} s)"


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_LONGEST_BUDGET_WAIT = 60.0


def budget_wait(headers: Any) -> float | None:
    """Seconds until a deployment has budget again, when its rate-limit headers
    (``x-ratelimit-remaining-*``, ``anthropic-ratelimit-*-remaining``) say none is
    left; None when they say nothing or that some is left."""
    exhausted: list[str] = []
    resets: dict[str, str] = {}
    for name, value in headers.multi_items():
        if name.startswith("x-ratelimit-") or name.startswith("anthropic-ratelimit-"):
            if "remaining" in name:
                if value.strip() in ("0", "0.0"):
                    exhausted.append(name.replace("remaining", "reset"))
            elif "reset" in name:
                resets[name] = value
    if not exhausted:
        return None
    wait = 0.0
    for name in exhausted:
        wait = max(wait, _reset_seconds(resets.get(name)))
    return min(wait or 1.0, _LONGEST_BUDGET_WAIT)


def _reset_seconds(value: str | None) -> float:
    if not value:
        return 1.0
    value = value.strip()
    parts = _DURATION.findall(value)
    if parts and "T" not in value:  # OpenAI: "1s", "6m0s", "20ms"
        scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        return sum(float(n) * scale[unit] for n, unit in parts)
    try:  # Anthropic: RFC 3339
        from datetime import datetime

        return max(0.0, datetime.fromisoformat(value).timestamp() - time.time())
    except ValueError:
        return 1.0


class Router:
    """A client's routes: the named ones, the deployments its calls share, the
    default cooldown and ``fallback_on``."""

    __slots__ = ("cooldown", "deployments", "fallback_on", "named")

    def __init__(
        self,
        routes: Mapping[str, Any] | None = None,
        cooldown: Cooldown | None = None,
        fallback_on: Any = None,
    ) -> None:
        if cooldown is not None and not isinstance(cooldown, Cooldown):
            raise ConfigurationError("cooldown must be a Cooldown")
        self.cooldown = cooldown or Cooldown()
        self.fallback_on = check_fallback_on(fallback_on)
        self.deployments: dict[str, Deployment] = {}
        self.named: dict[str, tuple[Entry, ...]] = {}
        for name, route in (routes or {}).items():
            if not isinstance(name, str) or not name:
                raise ConfigurationError(f"routes= names must be strings, not {name!r}")
            self.named[name] = entries_of(route)

    def check(self, resolve: Callable[[str], Any]) -> None:
        """Every model name of the named routes is known (``resolve`` raises if not)."""
        for name, entries in self.named.items():
            for entry in entries:
                for member in entry.members if isinstance(entry, Balance) else (entry,):
                    try:
                        resolve(member.model)
                    except ConfigurationError as exc:
                        raise ConfigurationError(
                            f"routes={{{name!r}: ...}}: {exc.message}"
                        ) from None

    def first_model(self, name: str) -> str:
        """The model name of a named route's first entry."""
        first = self.named[name][0]
        return (first.members[0] if isinstance(first, Balance) else first).model

    def deployment(self, route: Route, balance: Balance | None = None) -> Deployment:
        found = self.deployments.get(route.model)
        if found is None:
            cooldown = route.cooldown or (balance and balance.cooldown) or self.cooldown
            found = self.deployments[route.model] = Deployment(route.model, cooldown)
        return found

    def chain(
        self,
        model: Any,
        build: Callable[[str, dict[str, Any]], Call],
        params: dict[str, Any],
        options: StreamingOptions,
        record: bool,
    ) -> Call:
        """The first call of a route (its first entry; the deployment is chosen when
        the call starts), with its :class:`Chain`."""
        fallback_on = check_fallback_on(params.pop("fallback_on", None)) or self.fallback_on
        if options.on_interrupt == "restart" and not record:
            raise ConfigurationError(_RESTART_EVENTS_ONLY)
        entries = self.named.get(model) if isinstance(model, str) else None
        if entries is None:
            entries = entries_of(model)
        chain = Chain(self, entries, build, params, fallback_on)
        first = entries[0]
        route = first.members[0] if isinstance(first, Balance) else first
        call = chain.build_call(route)
        call.routes = chain
        return call


_RESTART_EVENTS_ONLY = (
    'on_interrupt="restart" works with stream_events() only (a Restart part tells you '
    "to clear what you showed); other methods cannot take back text they delivered"
)


class Chain:
    """One call's walk along its route."""

    __slots__ = (
        "billed",
        "build",
        "current",
        "deployment",
        "done",
        "entries",
        "fallback_on",
        "index",
        "params",
        "records",
        "router",
        "started",
        "tried",
    )

    def __init__(
        self,
        router: Router,
        entries: tuple[Entry, ...],
        build: Callable[[str, dict[str, Any]], Call],
        params: dict[str, Any],
        fallback_on: FallbackOn,
    ) -> None:
        self.router = router
        self.entries = entries
        self.build = build
        self.params = params  # the call's own parameters (a Route's override them)
        self.fallback_on = fallback_on
        self.index = 0  # the entry in use
        self.current: Route | None = None
        self.deployment: Deployment | None = None
        self.started = 0.0  # when the current entry's first attempt started
        self.tried: set[str] = set()
        self.records: list[RouteAttempt] = []
        self.billed: list[tuple[dict[str, Any], float | None]] = []
        self.done = True  # no deployment held yet

    def build_call(self, route: Route) -> Call:
        params = {**self.params, **route.params} if route.params else dict(self.params)
        call = self.build(route.model, params)
        call.routes = self
        return call

    # -- the attempts' questions -----------------------------------------------------
    def start(self, call: Call) -> Call:
        """The call starts: its first deployment (cooling ones skipped; raises
        CooldownError, with no request sent, when every one is cooling)."""
        now = time.perf_counter()
        chosen = self._choose(0, now)
        if chosen is None:
            raise self._cooling_error(now, call)
        index, route, deployment = chosen
        if route is not self._nominal():
            call = self.build_call(route)
        self._use(index, route, deployment, now)
        return call

    def next(self, exc: SteerError, state: StreamState | None, call: Call) -> Call | None:
        """The current entry failed with ``exc`` (its own retries done): the call for
        the next entry, or None (then ``exc`` is the call's error)."""
        now = time.perf_counter()
        self._record(exc, call, now)
        self._bill(state, call)
        if not self._triggers(exc):
            return None
        if isinstance(exc, AuthenticationError | PermissionDeniedError):
            logger.warning(
                "route: %s refused the credentials (%s): trying the next entry",
                call.context.get("provider"),
                type(exc).__name__,
            )
        failed = self.records[-1].route
        while True:
            chosen = self._choose(self.index, now)
            if chosen is None:
                self._note(exc, now)
                return None
            index, route, deployment = chosen
            try:
                nxt = self.build_call(route)
            except ConfigurationError as problem:  # no key for it, an unknown name ...
                self.index = index
                self.tried.add(route.model)
                self.records.append(RouteAttempt(route.model, "", route.model, problem, 0.0))
                logger.warning("route: cannot use %s: %s", route.model, problem.message)
                continue
            self._use(index, route, deployment, now)
            logger.info("route: %s failed (%s); trying %s", failed, type(exc).__name__, route)
            return nxt

    def finish(
        self, error: BaseException | None, call: Call, first_token_at: float | None = None
    ) -> None:
        """The call ended (``error`` None: it succeeded): the current deployment is
        released and told; its first-token latency (a moving average) updated."""
        if self.done:
            return
        now = time.perf_counter()
        deployment = self.deployment
        if error is None and first_token_at is not None and deployment is not None:
            latency = max(0.0, first_token_at - self.started)
            old = deployment.latency
            deployment.latency = latency if old is None else 0.8 * old + 0.2 * latency
        if isinstance(error, SteerError) or error is None:
            self._record(error, call, now)
        elif isinstance(error, Exception):  # a caller's callback raised: no verdict
            self._record(None, call, now)
        else:  # abandoned (GeneratorExit, CancelledError)
            self._release(None, now, verdict=False)

    def budget(self, headers: Any) -> None:
        """A response's rate-limit headers: no budget left → skipped while it lasts."""
        wait = budget_wait(headers)
        if wait is not None and self.deployment is not None:
            self.deployment.no_budget_until = time.perf_counter() + wait

    def attribute(
        self, response: StreamingResponse, call: Call, first_token_at: float | None
    ) -> None:
        """The answering route on the response; usage and cost of billed attempts
        added in."""
        self.finish(None, call, first_token_at)
        response.route = f"{call.provider.name}/{call.model}"
        response.route_attempts = list(self.records)
        if self.billed:
            from .streaming.ledger import add_usage

            usage = response.usage
            cost = response.cost_usd
            for billed, billed_cost in self.billed:
                usage = add_usage(usage, billed)
                cost = None if cost is None or billed_cost is None else cost + billed_cost
            response.usage = usage
            response.cost_usd = cost

    def restart(self, attempts: Any, exc: SteerError, state: StreamState | None) -> bool:
        """on_interrupt="restart" (stream_events only): after parts reached the
        caller, the call starts again on the next entry, announced by a Restart part;
        never while a tool call is open. ``attempts``: the call's Attempts."""
        call = attempts.call
        if call.options.on_interrupt != "restart" or not call.record:
            return False
        if state is not None and len(state.tool_calls) > len(getattr(state, "_ended", ())):
            return False  # a tool call is open: it would be lost
        nxt = self.next(exc, state, call)
        if nxt is None:
            return False
        attempts.call = attempts.ledger.call = nxt
        attempts.retries = 0
        del attempts.delivered[:]
        attempts.rich = False
        attempts.last_start = 0
        attempts.restarted = Restart(f"{nxt.provider.name}/{nxt.model}", exc)
        return True

    # -- inside ----------------------------------------------------------------------
    def _nominal(self) -> Route:
        first = self.entries[0]
        return first.members[0] if isinstance(first, Balance) else first

    def _use(self, index: int, route: Route, deployment: Deployment, now: float) -> None:
        self.index = index
        self.current = route
        self.deployment = deployment
        self.started = now
        self.tried.add(route.model)
        self.done = False
        deployment.in_flight += 1
        if deployment.open_until:  # half-open: this call is the probe
            deployment.probing = True

    def _choose(self, start: int, now: float) -> tuple[int, Route, Deployment] | None:
        """The first entry from ``start`` with a deployment to use: one with budget
        left if any, else one that is only out of budget."""
        for strict in (True, False):
            for index in range(start, len(self.entries)):
                found = self._pick(self.entries[index], now, strict)
                if found is not None:
                    return index, found[0], found[1]
        return None

    def _pick(self, entry: Entry, now: float, strict: bool) -> tuple[Route, Deployment] | None:
        router = self.router
        tried = self.tried
        if isinstance(entry, Route):
            if entry.model in tried:
                return None
            deployment = router.deployment(entry)
            if deployment.cooling(now) or (strict and deployment.no_budget_until > now):
                return None
            return entry, deployment
        candidates = []
        for i, member in enumerate(entry.members):
            if member.model in tried:
                continue
            deployment = router.deployment(member, entry)
            if deployment.cooling(now) or (strict and deployment.no_budget_until > now):
                continue
            candidates.append((i, deployment))
        if not candidates:
            return None
        index = entry.choose(candidates)
        member = entry.members[index]
        return member, router.deployment(member, entry)

    def _record(self, exc: SteerError | None, call: Call, now: float) -> None:
        route = self.current
        if self.done or route is None:
            return
        self.records.append(
            RouteAttempt(route.model, call.provider.name, call.model, exc, now - self.started)
        )
        self._release(exc, now)

    def _release(self, exc: SteerError | None, now: float, *, verdict: bool = True) -> None:
        deployment = self.deployment
        self.done = True
        if deployment is None:
            return
        deployment.in_flight -= 1
        if not verdict:  # abandoned: no word on its health; another call may probe
            deployment.probing = False
        elif exc is not None and is_health_failure(exc):
            deployment.failed(now)
        elif deployment.failures or deployment.open_until:
            deployment.succeeded()  # it answered (a 400 is an answer too)

    def _bill(self, state: StreamState | None, call: Call) -> None:
        """An attempt whose provider reported usage before it broke is billed."""
        if state is None or not state.usage:
            return
        from .pricing import compute_cost

        usage = dict(state.usage)
        cost = compute_cost(call.provider.name, call.model, usage, call.price_overrides)
        self.billed.append((usage, cost))

    def _triggers(self, exc: SteerError) -> bool:
        custom = self.fallback_on
        if custom is not None:
            if isinstance(custom, tuple):
                if isinstance(exc, custom):
                    return True
            elif custom(exc):
                return True
        if isinstance(exc, TotalTimeoutError):
            return False  # the call's whole budget is spent
        if isinstance(exc, _TRIGGERS):
            return True
        status = getattr(exc, "status_code", None)
        return isinstance(exc, APIStatusError) and status is not None and status >= 500

    def _note(self, exc: SteerError, now: float) -> None:
        """The route is exhausted: the error says what was tried."""
        tried = ", ".join(f"{r.route} ({type(r.error).__name__})" for r in self.records)
        cooling = [
            self.router.deployment(m).until_text(now)
            for entry in self.entries[self.index :]
            for m in (entry.members if isinstance(entry, Balance) else (entry,))
            if m.model not in self.tried and self.router.deployment(m).cooling(now)
        ]
        note = f"route: tried {tried}"
        if cooling:
            note += "; cooling down: " + ", ".join(cooling)
        exc.add_note(note)

    def _cooling_error(self, now: float, call: Call) -> CooldownError:
        deployments = [
            self.router.deployment(m)
            for entry in self.entries
            for m in (entry.members if isinstance(entry, Balance) else (entry,))
        ]
        first = min(d.open_until for d in deployments)
        wait = max(0.0, first - now)
        return CooldownError(
            "every deployment of this route is cooling down after repeated failures: "
            + ", ".join(d.until_text(now) for d in deployments)
            + "; no request was sent",
            until=time.time() + wait,
            retry_after=wait,
            provider=call.provider.name,
            model=call.model,
        )
