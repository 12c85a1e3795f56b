"""The emulator's scripting: replies queued, rules, outages, and the same over HTTP
(``POST /emulator/enqueue``, ``/emulator/rule``, ``/emulator/outage``). Standard
library only."""

from __future__ import annotations

import base64
import binascii
import json
from collections import deque
from dataclasses import dataclass
from typing import Any

from ._openai import error_plan as openai_error
from ._wire import Fault, Plan, RecordedRequest, Reply

__all__ = ["OUTAGES", "Outage", "Scripting", "outage_reply"]


OUTAGES = ("down", "rate_limit", "slow_first_token", "overloaded_mid_stream")


@dataclass(slots=True, eq=False)
class Outage:
    """A scripted rule: requests it matches get ``reply``. ``match``: text the body
    must contain (None: any); ``model``: the model asked for (body or Gemini path);
    ``calls``: how many requests it answers (None: until :meth:`Emulator.end_outage`).
    ``answered`` counts the requests it answered."""

    reply: Reply
    match: bytes | None = None
    model: str | None = None
    calls: int | None = None
    answered: int = 0

    def takes(self, request: RecordedRequest, body: dict[str, Any]) -> bool:
        if self.calls is not None and self.answered >= self.calls:
            return False
        if self.match is not None and self.match not in request.body:
            return False
        if self.model is not None and _model_of(request, body) != self.model:
            return False
        self.answered += 1
        return True


def _model_of(request: RecordedRequest, body: dict[str, Any]) -> str | None:
    model = body.get("model")
    if isinstance(model, str):
        return model
    path = request.path.split("?")[0]
    if "/models/" in path:  # Gemini: /v1beta/models/{model}:streamGenerateContent
        return path.split("/models/", 1)[1].split(":", 1)[0]
    return None


def outage_reply(
    kind: str,
    *,
    status: int = 503,
    retry_after: float = 1.0,
    seconds: float = 1.0,
    after: int = 2,
) -> Reply:
    """The reply of an outage ``kind``:

    - ``"down"``: every request answered ``status`` (503; 500, 502, 529, 401 ...);
    - ``"rate_limit"``: 429 with ``Retry-After: retry_after`` seconds;
    - ``"slow_first_token"``: the stream opens, then nothing for ``seconds``;
    - ``"overloaded_mid_stream"``: ``after`` text chunks, then the protocol's in-band
      overloaded error (Anthropic's ``event: error``, 529's type).
    """
    if kind == "down":
        return Reply(status=status)
    if kind == "rate_limit":
        return Reply(status=429, headers={"retry-after": f"{retry_after:g}"})
    if kind == "slow_first_token":
        return Reply(fault=Fault.stall_after(0, seconds, then="continue"))
    if kind == "overloaded_mid_stream":
        return Reply(fault=Fault.error_event_after(after, "overloaded_error"))
    raise ValueError(f"outage kind {kind!r} is not one of {', '.join(OUTAGES)}")


class Scripting:
    """What a test scripts on an :class:`~steer_llm_sdk.testing.Emulator` (a mixin)."""

    _queue: deque[Reply]
    _rules: list[Outage]

    def enqueue(self, *replies: Reply) -> None:
        """Script the next replies, first in first out."""
        self._queue.extend(replies)

    def add_rule(
        self,
        match: str | None,
        reply: Reply,
        *,
        model: str | None = None,
        calls: int | None = None,
    ) -> Outage:
        """Answer every request whose body contains ``match`` (None: any) with
        ``reply`` (e.g. a poisoned prompt: ``add_rule("item 7", Reply(status=400))``);
        ``model=``: only requests for that model; ``calls=``: only that many."""
        encoded = None if match is None else json.dumps(match)[1:-1].encode()
        rule = Outage(reply, encoded, model, calls)
        self._rules.append(rule)
        return rule

    def outage(
        self, kind: str = "down", *, calls: int | None = None, model: str | None = None, **how: Any
    ) -> Outage:
        """Script this provider's bad day (``model=``: one model only) for ``calls``
        requests, or until :meth:`end_outage`: see :func:`outage_reply` for the kinds."""
        return self.add_rule(None, outage_reply(kind, **how), model=model, calls=calls)

    def end_outage(self, outage: Outage | None = None) -> None:
        """End one outage (or rule), or every one."""
        if outage is None:
            self._rules.clear()
        elif outage in self._rules:
            self._rules.remove(outage)

    def _script_over_http(self, path: str, request: RecordedRequest) -> Plan:
        """``POST /emulator/enqueue`` with a Reply's fields as JSON (or a list of them);
        ``POST /emulator/rule`` with ``{"match": "...", "reply": {...}}``. A fault is
        ``{"kind": "drop", "after": 3}`` (the fields of :class:`Fault`); bytes are
        base64: ``"audio": "..."``, ``"files": [["image/png", "..."]]``."""
        try:
            data = request.json

            def reply_of(fields: dict[str, Any]) -> Reply:
                fields = dict(fields)
                if fields.get("fault"):
                    fields["fault"] = Fault(**fields["fault"])
                # Bytes travel as base64 in JSON: "audio", and "files" as [type, base64].
                if isinstance(fields.get("audio"), str):
                    fields["audio"] = base64.b64decode(fields["audio"], validate=True)
                if fields.get("files"):
                    fields["files"] = [
                        (str(media), base64.b64decode(data, validate=True))
                        for media, data in fields["files"]
                    ]
                return Reply(**fields)

            if path == "/emulator/rule":
                self.add_rule(str(data["match"]), reply_of(data["reply"]))
            elif path == "/emulator/outage":
                self.outage(**data)
            else:
                self.enqueue(*[reply_of(d) for d in (data if isinstance(data, list) else [data])])
        except (ValueError, TypeError, KeyError, binascii.Error) as exc:
            return openai_error(400, "invalid_request_error", f"bad script: {exc}", {})
        return Plan(200, "application/json", [b'{"ok": true}'])
