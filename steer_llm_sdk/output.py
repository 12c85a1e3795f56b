"""Structured output: ``output=`` turns a pydantic model (or any type pydantic's
``TypeAdapter`` accepts, or a JSON-schema dict) into a strict schema every provider
accepts, parses the answer while it streams, and validates it at the end.

pydantic is imported only when ``output=`` is a type; ``import steer_llm_sdk`` never
pulls it in.

Partial parsing is incremental: :class:`PartialJSON` reads each byte of the answer once
and grows the object in place, so a long output costs linear time. (The official SDKs
re-parse the whole buffer on every chunk, with jiter's partial mode, which is
quadratic in the length of the answer.)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import ConfigurationError, OutputValidationError
from .results import strip_fence

__all__ = ["OutputSpec", "PartialJSON", "make_output_spec", "strict_schema"]

# Keywords that carry no constraint a strict provider cares about, or that OpenAI's
# strict mode rejects while dropping them changes nothing the final validation (which
# uses the original type) does not check again.
_DROP = frozenset({"default", "examples", "uniqueItems", "readOnly", "writeOnly", "deprecated"})
_UNSUPPORTED = {
    "patternProperties": "keys matched by a pattern",
    "not": "a 'not' schema",
    "if": "an if/then/else schema",
    "dependentRequired": "dependent requirements",
    "dependentSchemas": "dependent schemas",
    "propertyNames": "constraints on key names",
    "unevaluatedProperties": "unevaluated properties",
    "minProperties": "a minimum number of keys",
    "maxProperties": "a maximum number of keys",
}


def _where(path: list[str]) -> str:
    return ".".join(path) if path else "the root"


def strict_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` that follows OpenAI's strict rules: every object has
    ``additionalProperties: false`` and lists every property as required (a property
    that was optional becomes nullable). Raises :class:`ConfigurationError` naming the
    field when a part cannot be made strict."""
    defs = schema.get("$defs") or {}

    def walk(node: Any, path: list[str]) -> Any:
        if isinstance(node, list):
            return [walk(item, path) for item in node]
        if not isinstance(node, dict):
            return node
        for key, what in _UNSUPPORTED.items():
            if key in node:
                raise ConfigurationError(
                    f"output schema field {_where(path)!r} uses {what} ({key!r}), which "
                    "strict structured output does not support: simplify that field"
                )
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _DROP:
                continue
            if key == "properties":
                out[key] = {name: walk(sub, [*path, name]) for name, sub in value.items()}
            elif key == "$defs":
                out[key] = {name: walk(sub, [name]) for name, sub in value.items()}
            elif key in ("items", "anyOf", "oneOf", "allOf", "prefixItems"):
                out[key] = walk(value, path if key != "items" else [*path, "[]"])
            elif key == "additionalProperties":
                if value not in (False, None) and value != {}:
                    raise ConfigurationError(
                        f"output schema field {_where(path)!r} is a mapping with free keys "
                        "(dict[str, ...]); strict structured output needs fixed fields: "
                        "use a model, or a list of key/value objects"
                    )
            else:
                out[key] = value
        if "oneOf" in out:  # strict mode knows anyOf only; the final validation
            out["anyOf"] = out.pop("oneOf")  # still checks exactly one matched
        is_object = out.get("type") == "object" or "properties" in out
        if is_object and "$ref" not in out:
            props = out.setdefault("properties", {})
            required = set(node.get("required") or ())
            for name in list(props):
                if name not in required:
                    props[name] = _nullable(props[name])
            out["required"] = list(props)
            out["additionalProperties"] = False
        return out

    result = walk(schema, [])
    if not isinstance(result, dict):  # pragma: no cover - schema is a dict
        raise ConfigurationError("an output schema must be a JSON object")
    if defs and "$defs" not in result:  # pragma: no cover
        result["$defs"] = defs
    return result


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    if node.get("type") == "null":
        return node
    any_of = node.get("anyOf")
    if isinstance(any_of, list) and any(
        isinstance(b, dict) and b.get("type") == "null" for b in any_of
    ):
        return node
    if isinstance(node.get("type"), str) and "$ref" not in node and "enum" not in node:
        return {**node, "type": [node["type"], "null"]}
    return {"anyOf": [node, {"type": "null"}]}


@dataclass(slots=True)
class OutputSpec:
    """What ``output=`` asked for: the strict schema to send and how to validate."""

    name: str
    schema: dict[str, Any]  # strict, always an object at the root
    original: dict[str, Any]  # the schema before it was made strict
    adapter: Any  # a pydantic TypeAdapter, or None for a JSON-schema dict
    wrapped: bool  # a non-object type, sent as {"value": ...}

    def validate(self, text: str, **context: Any) -> Any:
        """The answer as the requested type; :class:`OutputValidationError` if not."""
        candidate = strip_fence(text)
        try:
            data = orjson.loads(candidate)
        except orjson.JSONDecodeError as exc:
            raise OutputValidationError(
                f"the answer is not valid JSON ({exc}); the raw text is in .raw_text",
                raw_text=text,
                errors=[{"type": "json_invalid", "msg": str(exc)}],
                **context,
            ) from None
        data = _drop_null_optionals(data, self.original, self.original.get("$defs") or {})
        if self.wrapped:
            if not isinstance(data, dict) or "value" not in data:
                raise OutputValidationError(
                    "the answer lacks the 'value' field the schema asked for",
                    raw_text=text,
                    errors=[{"type": "missing", "loc": ["value"], "msg": "Field required"}],
                    **context,
                )
            data = data["value"]
        if self.adapter is None:
            return data
        from pydantic import ValidationError

        try:
            return self.adapter.validate_python(data)
        except ValidationError as exc:
            errors: list[dict[str, Any]] = [
                dict(e)
                for e in exc.errors(include_url=False, include_context=False, include_input=False)
            ]
            first = errors[0] if errors else {}
            where = ".".join(str(p) for p in first.get("loc", ())) or "the root"
            raise OutputValidationError(
                f"the answer does not match {self.name}: {len(errors)} error(s), first at "
                f"{where}: {first.get('msg', '')}; raw text in .raw_text, details in .errors",
                raw_text=text,
                errors=errors,
                **context,
            ) from None

    def partial(self) -> PartialJSON:
        return PartialJSON(self.original)


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    for _ in range(32):
        if isinstance(node, dict) and isinstance(node.get("$ref"), str):
            name = node["$ref"].rsplit("/", 1)[-1]
            node = defs.get(name)
        else:
            break
    return node


def _drop_null_optionals(value: Any, node: Any, defs: dict[str, Any]) -> Any:
    """Strict mode made optional fields nullable; a null there means "not given"."""
    node = _resolve(node, defs)
    if not isinstance(node, dict):
        return value
    if isinstance(value, dict) and isinstance(node.get("properties"), dict):
        required = set(node.get("required") or ())
        out = {}
        for key, item in value.items():
            sub = node["properties"].get(key)
            if item is None and key not in required and not _allows_null(sub, defs):
                continue
            out[key] = _drop_null_optionals(item, sub, defs)
        return out
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [_drop_null_optionals(item, node["items"], defs) for item in value]
    for key in ("anyOf", "oneOf"):
        branches = node.get(key)
        if isinstance(branches, list) and isinstance(value, dict | list):
            for branch in branches:
                resolved = _resolve(branch, defs)
                if isinstance(resolved, dict) and resolved.get("type") in ("object", "array"):
                    return _drop_null_optionals(value, resolved, defs)
    return value


def _allows_null(node: Any, defs: dict[str, Any]) -> bool:
    node = _resolve(node, defs)
    if not isinstance(node, dict):
        return True
    kind = node.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(_allows_null(b, defs) for key in ("anyOf", "oneOf") for b in node.get(key) or ())


def make_output_spec(output: Any) -> OutputSpec:
    """``output=`` → an :class:`OutputSpec`, or a ConfigurationError naming the problem."""
    if isinstance(output, dict):
        if output.get("type") == "json_schema" and isinstance(output.get("json_schema"), dict):
            inner = output["json_schema"]
            return _spec(str(inner.get("name") or "output"), inner.get("schema") or {}, None)
        if not output:
            raise ConfigurationError("output= is an empty dict: give a JSON schema")
        return _spec(str(output.get("title") or "output"), output, None)
    if output is None or isinstance(output, str | int | float | bool | bytes | list | tuple):
        raise ConfigurationError(
            f"output={output!r} is not supported: give a pydantic model class, a type "
            "pydantic's TypeAdapter accepts (list[Model], a TypedDict, a dataclass ...) "
            "or a JSON-schema dict"
        )
    try:
        from pydantic import TypeAdapter
        from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError
    except ImportError:  # pragma: no cover - pydantic is a dependency of the extra
        raise ConfigurationError(
            "output= with a type needs pydantic: pip install 'steer-llm-sdk[output]'"
        ) from None
    try:
        adapter = TypeAdapter(output)
        schema = adapter.json_schema()
    except (PydanticSchemaGenerationError, PydanticUserError, TypeError) as exc:
        raise ConfigurationError(
            f"output={output!r} is not a type pydantic can describe as a JSON schema: {exc}"
        ) from None
    name = getattr(output, "__name__", None) or str(schema.get("title") or "output")
    return _spec(name, schema, adapter)


_NAME_RE = re.compile(r"[^A-Za-z0-9_-]")


def _spec(name: str, schema: dict[str, Any], adapter: Any) -> OutputSpec:
    if not isinstance(schema, dict):
        raise ConfigurationError("an output JSON schema must be a dict")
    name = _NAME_RE.sub("_", name)[:64] or "output"
    wrapped = schema.get("type") != "object" and "properties" not in schema
    original = schema
    if wrapped:
        defs = schema.get("$defs")
        inner = {k: v for k, v in schema.items() if k != "$defs"}
        original = {"type": "object", "properties": {"value": inner}, "required": ["value"]}
        if defs:
            original["$defs"] = defs
    return OutputSpec(name, strict_schema(original), original, adapter, wrapped)


# -- incremental partial JSON --------------------------------------------------------

_WS = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r'[^ \t\n\r,\]\}:"\[\{]+')


class _Frame:
    __slots__ = ("container", "key", "node", "state")

    def __init__(self, container: Any, node: Any) -> None:
        self.container = container
        self.node = node
        self.key: str | None = None
        self.state = "key" if isinstance(container, dict) else "value"


class PartialJSON:
    """Grows a JSON value as text arrives, reading each character once.

    :meth:`feed` takes the next piece of text and returns whether the visible value
    changed. :attr:`value` is the value so far: containers appear as soon as they
    open and grow in place; a string field grows while it streams (unless its schema
    is an enum or a constant, which appear only whole); numbers, booleans and nulls
    appear once complete.
    """

    def __init__(self, schema: dict[str, Any] | None = None) -> None:
        self._defs = (schema or {}).get("$defs") or {}
        self._root_node = schema
        self._stack: list[_Frame] = []
        self._root_set = False
        self.value: Any = None
        self._in_string = False
        self._string_is_key = False
        self._raw: list[str] = []  # raw pieces of the open string (escapes undecoded)
        self._backslashes = 0  # backslashes at the end of the open string so far
        self._string_slot = False  # the open string shows in its container
        self._token = ""  # an unfinished number / true / false / null
        self.done = False
        self.error: str | None = None

    # -- public --------------------------------------------------------------------
    def feed(self, text: str) -> bool:
        if self.error is not None or (self.done and not text.strip()):
            return False
        try:
            changed = self._feed(text)
        except (ValueError, IndexError, KeyError, TypeError) as exc:
            # Not JSON after all (a model that ignored the schema): stop parsing; the
            # final validation reports it.
            self.error = str(exc)
            return False
        if self._in_string and self._string_slot:
            self._put(self._decode_open(), final=False)
            changed = True
        return changed

    # -- parser ----------------------------------------------------------------------
    def _feed(self, s: str) -> bool:
        i = 0
        n = len(s)
        changed = False
        while i < n:
            if self._in_string:
                end = self._string_end(s, i)
                if end < 0:
                    piece = s[i:]
                    self._raw.append(piece)
                    self._count_backslashes(piece)
                    return changed
                self._raw.append(s[i:end])
                raw = "".join(self._raw)
                self._raw.clear()
                self._in_string = False
                i = end + 1
                value = _decode_string(raw)
                if self._string_is_key:
                    self._stack[-1].key = value
                    self._stack[-1].state = "colon"
                else:
                    self._put(value, final=True)
                    changed = True
                continue
            if self._token:
                m = _SCALAR.match(s, i)
                if m:
                    self._token += m.group()
                    i = m.end()
                    if i >= n:
                        return changed
                self._put(orjson.loads(self._token), final=True)
                self._token = ""
                changed = True
                continue
            i = _WS.match(s, i).end()  # type: ignore[union-attr]
            if i >= n:
                break
            c = s[i]
            if c == '"':
                self._open_string()
                i += 1
            elif c == "{" or c == "[":
                container: Any = {} if c == "{" else []
                node = self._child_node()
                self._put(container, final=True)
                self._stack.append(_Frame(container, _resolve(node, self._defs)))
                changed = True
                i += 1
            elif c == "}" or c == "]":
                if not self._stack:
                    raise ValueError(f"unexpected {c!r}")
                self._stack.pop()
                self._after_value()
                i += 1
                if not self._stack:
                    self.done = True
            elif c == ":":
                self._stack[-1].state = "value"
                i += 1
            elif c == ",":
                frame = self._stack[-1]
                frame.state = "key" if isinstance(frame.container, dict) else "value"
                i += 1
            else:
                m = _SCALAR.match(s, i)
                if m is None:  # pragma: no cover - every other char matches
                    raise ValueError(f"unexpected {c!r}")
                self._token = m.group()
                i = m.end()
                if i < n:
                    self._put(orjson.loads(self._token), final=True)
                    self._token = ""
                    changed = True
        return changed

    def _string_end(self, s: str, i: int) -> int:
        """Index of the quote that closes the open string, searching ``s`` from ``i``
        (a quote after an odd run of backslashes is escaped), or -1."""
        start = i
        carried = self._backslashes
        while True:
            j = s.find('"', i)
            if j < 0:
                return -1
            k = j
            while k > start and s[k - 1] == "\\":
                k -= 1
            run = j - k + (carried if k == start else 0)
            if run % 2 == 0:
                return j
            i = j + 1

    def _count_backslashes(self, piece: str) -> None:
        stripped = piece.rstrip("\\")
        run = len(piece) - len(stripped)
        self._backslashes = run + (self._backslashes if not stripped else 0)

    def _open_string(self) -> None:
        self._in_string = True
        self._backslashes = 0
        frame = self._stack[-1] if self._stack else None
        self._string_is_key = frame is not None and frame.state == "key"
        self._string_slot = not self._string_is_key and _grows(self._child_node(), self._defs)
        if self._string_slot and frame is not None and isinstance(frame.container, list):
            frame.container.append("")

    def _decode_open(self) -> str:
        raw = "".join(self._raw)
        cut = raw.rfind("\\")
        if cut >= 0 and not _complete_escape(raw[cut:]):
            # an escape split by the network: show the text before it
            run = len(raw[:cut]) - len(raw[:cut].rstrip("\\"))
            if run % 2 == 0:
                raw = raw[:cut]
        return _decode_string(raw)

    def _child_node(self) -> Any:
        if not self._stack:
            return self._root_node
        frame = self._stack[-1]
        node = frame.node
        if not isinstance(node, dict):
            return None
        if isinstance(frame.container, dict):
            props = node.get("properties")
            return props.get(frame.key) if isinstance(props, dict) else None
        items = node.get("items")
        return items if isinstance(items, dict) else None

    def _put(self, value: Any, *, final: bool) -> None:
        if not self._stack:
            self.value = value
            self._root_set = True
            if final and not isinstance(value, dict | list):
                self.done = True
            return
        frame = self._stack[-1]
        container = frame.container
        if isinstance(container, dict):
            container[frame.key] = value
        elif self._string_slot:
            container[-1] = value  # the slot the string opened
        else:
            container.append(value)
        if final:
            self._string_slot = False
            frame.state = "comma"

    def _after_value(self) -> None:
        if self._stack:
            self._stack[-1].state = "comma"


def _grows(node: Any, defs: dict[str, Any]) -> bool:
    """Whether a string at this schema position may be shown while it streams."""
    node = _resolve(node, defs)
    if not isinstance(node, dict):
        return True
    if "enum" in node or "const" in node:
        return False
    branches = node.get("anyOf") or node.get("oneOf")
    if isinstance(branches, list):
        return all(_grows(b, defs) for b in branches)
    return True


def _complete_escape(tail: str) -> bool:
    if len(tail) < 2:
        return False
    if tail[1] == "u":
        return len(tail) >= 6
    return True


def _decode_string(raw: str) -> str:
    if "\\" not in raw and '"' not in raw:
        return raw
    try:
        value = orjson.loads('"' + raw + '"')
    except orjson.JSONDecodeError:
        value = json.loads('"' + raw + '"', strict=False)
    return str(value)
