"""Tools in one shape for every protocol, and the loop that runs them.

``tools=[...]`` accepts OpenAI-style dicts, plain Python functions (sync or async; the
schema comes from the signature, type hints and docstring, through pydantic), pydantic
models (the model is the arguments; no function) and :class:`Tool`. Each codec maps the
neutral definitions to its protocol. pydantic is imported only when a function or a
model is given.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import ConfigurationError
from .files import File

__all__ = ["Tool", "normalize_tool_choice", "normalize_tools", "tool_result_message"]

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(slots=True)
class Tool:
    """A tool the model may call: ``parameters`` is a JSON schema of an object.

    ``function`` (sync or async) is what :meth:`SteerLLMClient.run_tools` calls with
    the arguments as keyword arguments; a tool without one can still be offered to
    the model, and its calls appear in ``response.tool_calls``.

    ``kind="custom"`` is a free-form tool of the OpenAI Responses API: no
    ``parameters``; the model writes plain text (constrained by ``format``, e.g.
    ``{"type": "grammar", "syntax": "lark", "definition": ...}``, when given), and
    ``function`` is called with that text as its one argument. Only the Responses API
    takes them; other protocols refuse them with a ConfigurationError.
    """

    name: str
    description: str = ""
    parameters: dict[str, Any] | None = None
    function: Callable[..., Any] | None = None
    strict: bool = False
    _adapter: Any = None  # pydantic validator of the arguments, when known
    kind: str = "function"
    format: dict[str, Any] | None = None  # custom tools: the input's format

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME_RE.match(self.name):
            raise ConfigurationError(
                f"tool name {self.name!r} is not valid: use 1-64 letters, digits, '_' or '-'"
            )
        if self.function is not None and not callable(self.function):
            raise ConfigurationError(f"tool {self.name!r}: function is not callable")
        if self.kind == "custom":
            if self.parameters is not None:
                raise ConfigurationError(
                    f"tool {self.name!r}: a custom tool takes free-form text, not parameters"
                )
            if self.format is not None and not isinstance(self.format, dict):
                raise ConfigurationError(
                    f"tool {self.name!r}: format must be a dict such as "
                    "{'type': 'grammar', 'syntax': 'lark', 'definition': ...}, "
                    f"not {type(self.format).__name__}"
                )
            return
        if self.kind != "function":
            raise ConfigurationError(
                f"tool {self.name!r}: kind={self.kind!r} is not known: use 'function' or 'custom'"
            )
        if self.format is not None:
            raise ConfigurationError(
                f"tool {self.name!r}: format is for custom tools (kind='custom')"
            )
        if self.parameters is None:
            self.parameters = {"type": "object", "properties": {}}
        if not isinstance(self.parameters, dict):
            raise ConfigurationError(
                f"tool {self.name!r}: parameters must be a JSON schema dict, "
                f"not {type(self.parameters).__name__}"
            )
        if self.parameters.get("type", "object") != "object":
            raise ConfigurationError(
                f"tool {self.name!r}: parameters must describe an object "
                f"(type 'object'), not {self.parameters.get('type')!r}"
            )

    @classmethod
    def from_function(
        cls, fn: Callable[..., Any], *, name: str | None = None, description: str | None = None
    ) -> Tool:
        """A tool from a Python function: schema from its signature and type hints,
        description from its docstring (first paragraph)."""
        try:
            from pydantic import TypeAdapter
            from pydantic.errors import PydanticSchemaGenerationError, PydanticUserError
        except ImportError:  # pragma: no cover
            raise ConfigurationError(
                "tools from functions need pydantic: pip install 'steer-llm-sdk[output]'"
            ) from None
        tool_name = str(name or getattr(fn, "__name__", ""))
        doc = (getattr(fn, "__doc__", None) or "").strip()
        summary = description if description is not None else doc.split("\n\n")[0].strip()
        try:
            adapter = _arguments_adapter(fn, TypeAdapter)
            schema = adapter.json_schema()
        except (PydanticSchemaGenerationError, PydanticUserError, TypeError, NameError) as exc:
            raise ConfigurationError(
                f"tool {tool_name!r}: cannot build a schema from its signature: {exc}"
            ) from None
        schema.pop("title", None)
        schema.pop("additionalProperties", None)
        tool = cls(tool_name, " ".join(summary.split()), schema, fn)
        tool._adapter = adapter
        return tool

    @classmethod
    def from_model(cls, model: Any, *, name: str | None = None) -> Tool:
        """A tool whose arguments are a pydantic model (no function to run)."""
        schema = model.model_json_schema()
        schema.pop("title", None)
        doc = (model.__doc__ or "").strip()
        tool = cls(name or model.__name__, " ".join(doc.split("\n\n")[0].split()), schema)
        from pydantic import TypeAdapter

        tool._adapter = TypeAdapter(model)
        return tool

    def to_dict(self) -> dict[str, Any]:
        """The neutral shape the codecs map to their protocol."""
        if self.kind == "custom":
            custom: dict[str, Any] = {
                "name": self.name,
                "description": self.description,
                "kind": "custom",
            }
            if self.format is not None:
                custom["format"] = self.format
            return custom
        return {
            "name": self.name,
            "description": self.description,
            "parameters": self.parameters,
            "strict": self.strict,
        }

    async def call(self, arguments: dict[str, Any]) -> Any:
        """Run the function with the arguments (sync functions in a thread); a custom
        tool's function gets the model's text as its one argument."""
        fn = self.function
        if fn is None:
            raise ConfigurationError(f"tool {self.name!r} has no function to run")
        args: tuple[Any, ...] = ()
        kwargs = arguments
        if self.kind == "custom":
            args, kwargs = (arguments.get("input", ""),), {}
        elif self._adapter is not None and _is_arguments_adapter(self._adapter):
            kwargs = _validated_kwargs(self._adapter, arguments)
        code = getattr(fn, "__code__", None)
        if code is not None and code.co_flags & 0x80:  # async def
            return await fn(*args, **kwargs)
        import asyncio

        result = await asyncio.to_thread(fn, *args, **kwargs)
        if hasattr(result, "__await__"):
            result = await result
        return result


def _arguments_adapter(fn: Callable[..., Any], type_adapter: Any) -> Any:
    """A pydantic adapter validating a function's keyword arguments."""
    import inspect
    import typing

    from pydantic import Field, create_model

    signature = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references: fall back to Any
        hints = {}
    descriptions = _param_docs(getattr(fn, "__doc__", None) or "")
    fields: dict[str, Any] = {}
    for pname, param in signature.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.kind is param.POSITIONAL_ONLY:
            raise TypeError(f"parameter {pname!r} is positional-only")
        annotation = hints.get(pname, Any)
        default = ... if param.default is param.empty else param.default
        fields[pname] = (annotation, Field(default, description=descriptions.get(pname)))
    model = create_model(f"{getattr(fn, '__name__', 'tool')}_arguments", **fields)
    adapter = type_adapter(model)
    adapter._steer_arguments = True
    return adapter


def _is_arguments_adapter(adapter: Any) -> bool:
    return bool(getattr(adapter, "_steer_arguments", False))


def _validated_kwargs(adapter: Any, arguments: dict[str, Any]) -> dict[str, Any]:
    validated = adapter.validate_python(arguments)
    return {name: getattr(validated, name) for name in type(validated).model_fields}


_PARAM_RE = re.compile(r"^\s*(?::param\s+)?(\w+)\s*(?:\([^)]*\))?\s*:\s*(.+)$")


def _param_docs(doc: str) -> dict[str, str]:
    """Parameter descriptions from a Google-style ``Args:`` section or ``:param x:``."""
    out: dict[str, str] = {}
    in_args = False
    for line in doc.splitlines():
        stripped = line.strip()
        if stripped.lower() in ("args:", "arguments:", "parameters:"):
            in_args = True
            continue
        if in_args and stripped.endswith(":") and " " not in stripped:
            in_args = False
        if in_args or stripped.startswith(":param"):
            match = _PARAM_RE.match(stripped)
            if match:
                out[match.group(1)] = match.group(2).strip()
    return out


def _from_custom_dict(spec: dict[str, Any], i: int) -> Tool:
    """``{"type": "custom", "name", "description", "format"}`` (Responses) or
    ``{"type": "custom", "custom": {...}}`` (Chat Completions)."""
    nested = spec.get("custom")
    inner: dict[str, Any] = nested if isinstance(nested, dict) else spec
    if "name" not in inner:
        raise ConfigurationError(f"tools[{i}] is a custom tool with no 'name'")
    unknown = inner.keys() - {"type", "name", "description", "format"}
    if unknown:
        raise ConfigurationError(
            f"tools[{i}] (custom tool {inner['name']!r}) has fields this SDK does not "
            f"send: {sorted(unknown)}; a custom tool has name, description and format"
        )
    return Tool(
        inner["name"], inner.get("description") or "", kind="custom", format=inner.get("format")
    )


def _from_openai_dict(spec: dict[str, Any], i: int) -> Tool:
    if spec.get("type") == "custom":
        return _from_custom_dict(spec, i)
    if spec.get("type") == "function" and isinstance(spec.get("function"), dict):
        fn = spec["function"]
    elif "name" in spec and ("parameters" in spec or "input_schema" in spec):
        fn = {**spec, "parameters": spec.get("parameters") or spec.get("input_schema")}
    elif "name" in spec and len(spec.keys() - {"name", "description", "strict"}) == 0:
        fn = spec
    else:
        raise ConfigurationError(
            f"tools[{i}] is a dict but not a tool: give "
            "{'type': 'function', 'function': {'name': ..., 'parameters': {...}}}"
        )
    if "name" not in fn:
        raise ConfigurationError(f"tools[{i}] has no 'name'")
    return Tool(
        fn["name"],
        fn.get("description") or "",
        fn.get("parameters"),
        strict=bool(fn.get("strict", False)),
    )


def normalize_tools(tools: Any) -> list[Tool]:
    """Whatever the caller gave as ``tools=`` → a list of :class:`Tool`, checked."""
    if tools is None:
        return []
    if isinstance(tools, dict | str) or not isinstance(tools, Sequence):
        raise ConfigurationError(
            f"tools must be a list (of dicts, functions, pydantic models or Tool), "
            f"not {type(tools).__name__}"
        )
    out: list[Tool] = []
    for i, item in enumerate(tools):
        if isinstance(item, Tool):
            tool = item
        elif isinstance(item, dict):
            tool = _from_openai_dict(item, i)
        elif isinstance(item, type) and hasattr(item, "model_json_schema"):
            tool = Tool.from_model(item)
        elif callable(item) and not isinstance(item, type):
            tool = Tool.from_function(item)
        else:
            raise ConfigurationError(
                f"tools[{i}] is a {type(item).__name__}: give an OpenAI-style dict, a "
                "function, a pydantic model class or a steer_llm_sdk.Tool"
            )
        out.append(tool)
    seen: set[str] = set()
    for tool in out:
        if tool.name in seen:
            raise ConfigurationError(
                f"two tools are named {tool.name!r}: tool names must be unique"
            )
        seen.add(tool.name)
    return out


def normalize_tool_choice(choice: Any, tools: list[Tool]) -> str | dict[str, str] | None:
    if choice is None:
        return None
    if isinstance(choice, dict):  # OpenAI's {"type": "function", "function": {"name"}}
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else choice.get("name")
        if not isinstance(name, str):
            raise ConfigurationError(f"tool_choice={choice!r} names no tool")
        choice = name
    if not isinstance(choice, str):
        raise ConfigurationError(
            f"tool_choice must be 'auto', 'none', 'required' or a tool name, not {choice!r}"
        )
    if choice in ("auto", "none", "required"):
        if choice == "required" and not tools:
            raise ConfigurationError("tool_choice='required' needs tools=[...]")
        return choice
    if choice == "any":
        return "required"
    names = [t.name for t in tools]
    if choice not in names:
        raise ConfigurationError(
            f"tool_choice={choice!r} names no tool in tools= "
            f"({', '.join(names) or 'none given'}); or use 'auto', 'none', 'required'"
        )
    return {"name": choice}


def tool_result_message(call_id: str, content: Any, *, is_error: bool = False) -> dict[str, Any]:
    """The ``tool`` message that answers a call (content made a string: JSON for
    anything that is not one). A :class:`~steer_llm_sdk.files.File`, or a list of
    strings and Files, stays a list of parts: each protocol sends the files as it can
    (README: "Files: images, documents, audio")."""
    if isinstance(content, File):
        content = [content]
    elif isinstance(content, list | tuple) and any(isinstance(c, File) for c in content):
        content = [c if isinstance(c, str | File) else _text(c) for c in content]
    else:
        content = _text(content)
    message: dict[str, Any] = {"role": "tool", "tool_call_id": call_id, "content": content}
    if is_error:
        message["is_error"] = True
    return message


def _text(content: Any) -> str:
    if not isinstance(content, str):
        if hasattr(content, "model_dump_json"):
            content = content.model_dump_json()
        else:
            try:
                content = orjson.dumps(content, default=str).decode()
            except TypeError:
                content = str(content)
    return content
