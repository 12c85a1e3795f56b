"""A value that fits a JSON schema, for the emulator's unscripted structured answer.

Reads JSON Schema as the providers take it (``type`` as a name or a list, ``$ref``
into ``$defs``/``definitions``, ``anyOf``/``oneOf``/``allOf``, ``enum``/``const``,
``prefixItems``) and Gemini's OpenAPI ``Schema`` (upper-case type names,
``nullable``, ``propertyOrdering``). The value is deterministic: every property
(required or not) is filled; a nullable field gets a value, not null; a string is
the field's name (or a sample of its ``format``), a number the smallest pleasant one
the bounds allow, an array one item (or ``minItems``), an enum its first member.
Where the ``known`` values name a field of the same type with no other constraint,
that value is used, and a free-form object at the root (no properties) is the known
values (the emulator passes its default product, so ``name`` is "Aurora Desk Lamp"
and ``{"type": "object"}`` gets the product whole). Constraints no generator can meet
in general (``pattern``, ``not``) are not met. A schema that contains itself stops
growing at its second level (nullable fields null, arrays empty). Standard library only.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["fit_schema"]

_FORMATS = {
    "date-time": "2024-01-01T12:00:00Z",
    "date": "2024-01-01",
    "time": "12:00:00Z",
    "duration": "P1D",
    "email": "ada@example.com",
    "idn-email": "ada@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "byte": "ZW11bGF0b3I=",
}
# From this depth, or inside a schema that contains itself: nullable fields are null,
# arrays have minItems items, objects only their required fields.
_DEEP = 8
_DEEPEST = 64  # a schema that recurses without end stops here
_CONSTRAINTS = frozenset(
    {
        "enum",
        "const",
        "format",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
    }
)


def fit_schema(schema: dict[str, Any], known: dict[str, Any] | None = None) -> Any:
    """A value that fits ``schema``; ``known`` values fill same-named plain fields."""
    return _Fitter(schema, known or {}).value(schema, "", 0)


class _Fitter:
    def __init__(self, root: dict[str, Any], known: dict[str, Any]) -> None:
        self.root = root
        self.known = known
        self.refs: list[str] = []  # the $refs being filled, outermost first

    def resolve(self, node: Any) -> Any:
        """Follow local ``$ref`` s (``#``, ``#/$defs/Name``, any JSON pointer)."""
        for _ in range(_DEEPEST):
            if not (isinstance(node, dict) and isinstance(node.get("$ref"), str)):
                return node
            ref = node["$ref"]
            target: Any = self.root
            if not ref.startswith("#"):
                return {}  # a remote schema: anything fits
            for token in ref[1:].split("/")[1:] if ref != "#" else ():
                key = token.replace("~1", "/").replace("~0", "~")
                target = target.get(key) if isinstance(target, dict) else None
            extra = {k: v for k, v in node.items() if k != "$ref"}
            node = {**target, **extra} if isinstance(target, dict) else extra
        return node

    def value(self, node: Any, name: str, depth: int, index: int = 0) -> Any:
        ref = node.get("$ref") if isinstance(node, dict) else None
        if not isinstance(ref, str):
            return self.fit(node, name, depth, index)
        if ref in self.refs:  # a schema within itself: grow no further
            depth = max(depth, _DEEP)
        self.refs.append(ref)
        try:
            return self.fit(self.resolve(node), name, depth, index)
        finally:
            self.refs.pop()

    def fit(self, node: Any, name: str, depth: int, index: int) -> Any:
        if node is True or node == {}:
            return self.string({}, name, index)
        if not isinstance(node, dict) or depth > _DEEPEST:
            return None
        if "const" in node:
            return node["const"]
        enum = node.get("enum")
        if isinstance(enum, list) and enum:
            members = [m for m in enum if m is not None] or enum
            return members[index % len(members)]
        branches = node.get("anyOf") or node.get("oneOf")
        if isinstance(branches, list) and branches:
            return self.branch(node, branches, name, depth, index)
        if isinstance(node.get("allOf"), list):
            merged = {k: v for k, v in node.items() if k != "allOf"}
            for part in node["allOf"]:
                merged = _merge(merged, self.resolve(part))
            return self.value(merged, name, depth, index)
        kinds = _types(node)
        if depth >= _DEEP and ("null" in kinds or node.get("nullable") is True):
            return None
        kind = next((k for k in kinds if k != "null"), "null")
        if kind == "object":
            return self.object(node, depth)
        if kind == "array":
            return self.array(node, name, depth)
        if kind in ("integer", "number"):
            return self.number(node, kind == "integer", index)
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return self.string(node, name, index)

    def branch(
        self, node: dict[str, Any], branches: list[Any], name: str, depth: int, index: int
    ) -> Any:
        """The first branch that is not null (null only past the depth limit)."""
        real = [
            b
            for b in branches
            if not (isinstance(r := self.resolve(b), dict) and _types(r) == ["null"])
        ]
        if depth >= _DEEP and len(real) < len(branches):
            return None
        rest = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
        chosen = real[0] if real else branches[0]
        if not isinstance(chosen, dict):
            return self.value(chosen, name, depth, index)
        if "$ref" in chosen:  # resolved (with the rest) inside, where recursion is seen
            return self.value({**rest, **chosen}, name, depth, index)
        return self.value(_merge(rest, chosen), name, depth, index)

    def object(self, node: dict[str, Any], depth: int) -> dict[str, Any]:
        found = node.get("properties")
        properties: dict[str, Any] = found if isinstance(found, dict) else {}
        required = [r for r in node.get("required") or () if isinstance(r, str)]
        order = [p for p in node.get("propertyOrdering") or () if p in properties]
        order += [p for p in properties if p not in order]
        order += [r for r in required if r not in order]
        if depth >= _DEEP:
            order = [p for p in order if p in required]
        extra = node.get("additionalProperties")
        if depth == 0 and not order and extra in (None, True):
            return dict(self.known)  # a free-form object: the known values, as without one
        out: dict[str, Any] = {}
        for prop in order:
            sub = properties.get(prop, {})
            hint = self.known.get(prop)
            if hint is not None and self.plain_fit(sub, hint):
                out[prop] = hint
            else:
                out[prop] = self.value(sub, prop, depth + 1)
        for i in range(len(out), node.get("minProperties") or 0):
            sub = extra if isinstance(extra, dict) else {}
            out[f"key{i + 1}"] = self.value(sub, f"key{i + 1}", depth + 1)
        return out

    def array(self, node: dict[str, Any], name: str, depth: int) -> list[Any]:
        items = node.get("items")
        if isinstance(items, list):  # draft 4 tuples
            firsts: list[Any] = items
            more: Any = {}
        else:
            prefix = node.get("prefixItems")
            firsts = prefix if isinstance(prefix, list) else []
            more = items if isinstance(items, dict) else None if items is False else {}
        count = max(node.get("minItems") or 0, len(firsts), 1 if depth < _DEEP else 0)
        if more is None:
            count = min(count, len(firsts))
        if isinstance(node.get("maxItems"), int):
            count = min(count, node["maxItems"])
        subs = [firsts[i] if i < len(firsts) else more for i in range(count)]
        return [self.value(sub, name, depth + 1, i) for i, sub in enumerate(subs)]

    def number(self, node: dict[str, Any], integer: bool, index: int) -> int | float:
        low, high = node.get("minimum"), node.get("maximum")
        above, below = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
        if above is True:  # draft 4: a flag on minimum
            above, low = low, None
        if below is True:
            below, high = high, None
        if isinstance(above, bool):
            above = None
        if isinstance(below, bool):
            below = None
        step = node.get("multipleOf")
        value: float = (1 if integer else 1.5) + index
        if low is not None and value < low:
            value = low
        if above is not None and value <= above:
            if integer:
                value = math.floor(above) + 1
            else:
                value = above + 1 if below is None else (above + below) / 2
        if high is not None and value > high:
            value = high
        if below is not None and value >= below:
            value = below - 1 if integer or above is None else (above + below) / 2
        if isinstance(step, (int, float)) and step > 0:
            up = math.ceil(value / step) * step
            fits_up = (high is None or up <= high) and (below is None or up < below)
            value = up if fits_up else math.floor(value / step) * step
            value = round(value, 10)
        if integer:
            return int(math.ceil(value) if low is not None or above is not None else value)
        return float(value)

    def plain_fit(self, node: Any, value: Any) -> bool:
        """Whether a known value fits a field with no constraint beyond its type."""
        node = self.resolve(node)
        if not isinstance(node, dict) or _CONSTRAINTS & node.keys():
            return False
        branches = node.get("anyOf") or node.get("oneOf")
        if isinstance(branches, list):
            return any(self.plain_fit(b, value) for b in branches)
        if "allOf" in node:
            return False
        kinds = _types(node)
        if isinstance(value, bool):
            return "boolean" in kinds
        if isinstance(value, int):
            return "integer" in kinds or "number" in kinds
        if isinstance(value, float):
            return "number" in kinds
        return isinstance(value, str) and "string" in kinds

    def string(self, node: dict[str, Any], name: str, index: int) -> str:
        text = _FORMATS.get(str(node.get("format") or "").lower())
        if text is None:
            text = name.replace("_", " ").strip() or "text"
            if index:
                text = f"{text} {index + 1}"
        least, most = node.get("minLength"), node.get("maxLength")
        if isinstance(least, int) and len(text) < least:
            text += "x" * (least - len(text))
        if isinstance(most, int) and len(text) > most:
            text = text[:most]
        return text


def _types(node: dict[str, Any]) -> list[str]:
    """The schema's type names, lower case (Gemini writes ``STRING``); inferred from
    its keywords when it names none."""
    kind = node.get("type")
    if isinstance(kind, str):
        return [kind.lower()]
    if isinstance(kind, list) and kind:
        return [str(k).lower() for k in kind]
    if "properties" in node or "additionalProperties" in node or "required" in node:
        return ["object"]
    if "items" in node or "prefixItems" in node:
        return ["array"]
    if any(k in node for k in ("minimum", "maximum", "exclusiveMinimum", "multipleOf")):
        return ["number"]
    return ["string"]


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Two schemas that must both hold, as one (properties and required united)."""
    out = {**base, **extra}
    if isinstance(base.get("properties"), dict) and isinstance(extra.get("properties"), dict):
        out["properties"] = {**base["properties"], **extra["properties"]}
    if base.get("required") and extra.get("required"):
        out["required"] = [*base["required"], *extra["required"]]
    return out
