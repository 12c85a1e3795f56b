"""The typed parts of ``client.stream_events()`` and :class:`ToolCall`, importable
from here as before: they live in :mod:`steer_llm_sdk.results` with the response."""

from .results import *  # noqa: F403
from .results import __all__ as __all__
