"""The response of ``stream_with_usage()`` and ``generate()``, importable from here as
before: it lives in :mod:`steer_llm_sdk.results` with the stream parts."""

from ..results import *  # noqa: F403
from ..results import __all__ as __all__
