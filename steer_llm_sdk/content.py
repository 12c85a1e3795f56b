"""The neutral input vocabulary: message content as :class:`TextPart` and :class:`FilePart`.

Callers write content parts the OpenAI way (``{"type": "text"}``, ``image_url``,
``input_audio``, ``file``, plain strings). The request layer turns them into these
parts once per call (:func:`to_part`), checks each file against what the protocol's
codec declares it takes (:func:`check_part`), and every codec maps the neutral parts
to its own wire shapes in one function. A dict of any other ``type`` (a provider's own
block: Anthropic's ``document``, a server's ``video_url`` ...) is passed through as
is, for the codec to send or refuse. Standard library only.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigurationError
from .files import File

__all__ = [
    "FilePart",
    "TextPart",
    "as_part",
    "audio_format",
    "check_base64",
    "check_part",
    "default_name",
    "describe_table",
    "file_table",
    "from_file",
    "takes",
    "to_part",
]

# input_audio formats ↔ media types (any other format f is audio/f, and back).
_AUDIO_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg"}
_AUDIO_FORMATS = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/mpeg": "mp3", "audio/mp3": "mp3"}
_URLSAFE = str.maketrans("-_", "+/")
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_SPACE = b" \t\r\n"
_LENIENT = _ALPHABET + b"-_" + _SPACE
_PADDING = b"=" + _SPACE


@dataclass(frozen=True, slots=True)
class TextPart:
    """Text in a message's content."""

    text: str
    cache_control: Any = None  # Anthropic's prompt-caching mark (other protocols drop it)


@dataclass(frozen=True, slots=True)
class FilePart:
    """A file in a message's content (an image, audio, a PDF ...): its data (``data``
    as bytes, or ``b64`` as base64 text), a ``url``, or a ``file_id`` (a file uploaded
    to the provider), exactly one of them.

    Files written as base64 (data URLs, ``input_audio``) keep their text in ``b64``:
    it is checked, never decoded, and sent as it is.
    """

    media_type: str  # lowercase, e.g. "image/png"; for a URL a guess from its path,
    # "" where a URL or a file id does not tell it
    data: bytes | None = None
    url: str | None = None
    file_id: str | None = None
    filename: str | None = None
    detail: str | None = None  # OpenAI's image detail ("low", "high", "auto")
    cache_control: Any = None  # Anthropic's prompt-caching mark
    b64: str | None = field(default=None, repr=False)
    _url: str | None = field(default=None, repr=False, compare=False)  # data_url(), cached

    def __post_init__(self) -> None:
        inline = self.data is not None or self.b64 is not None
        if inline + (self.url is not None) + (self.file_id is not None) != 1:
            raise ValueError("a FilePart holds one of data (or b64), url and file_id")

    def base64(self) -> str:
        """The data as base64 text, encoded once (kept on the part: a call's retries
        and attempts send the same text)."""
        b64 = self.b64
        if b64 is None:
            import base64

            b64 = base64.b64encode(self.data or b"").decode("ascii")
            object.__setattr__(self, "b64", b64)
        return b64

    def data_url(self) -> str:
        """The data as a ``data:`` URL (made once)."""
        url = self._url
        if url is None:
            url = f"data:{self.media_type};base64,{self.base64()}"
            object.__setattr__(self, "_url", url)
        return url

    def size(self) -> int:
        """The data's size in bytes (from the base64 length when given as text); 0
        for a URL or a file id."""
        if self.data is not None:
            return len(self.data)
        if self.b64 is not None:
            text = self.b64.rstrip("=")
            return len(text) * 3 // 4
        return 0

    def content(self) -> bytes:
        """The data as bytes (decoded from ``b64`` when given as text)."""
        if self.data is not None:
            return self.data
        text = "".join((self.b64 or "").split()).rstrip("=").translate(_URLSAFE)
        return binascii.a2b_base64(text + "=" * (-len(text) % 4))


def audio_format(media_type: str) -> str:
    """The ``input_audio`` format of an audio media type (``audio/mpeg`` → ``mp3``)."""
    return _AUDIO_FORMATS.get(media_type) or media_type.partition("/")[2]


_EXTENSIONS = {
    "application/pdf": "pdf",
    "text/plain": "txt",
    "audio/mpeg": "mp3",
    "image/jpeg": "jpg",
}


def default_name(media_type: str) -> str:
    """A file name for a part that has none, where a protocol wants one
    (``file.pdf``)."""
    subtype = media_type.partition("/")[2].split("+")[0].split(".")[-1] or "bin"
    return f"file.{_EXTENSIONS.get(media_type, subtype)}"


def takes(accepts: frozenset[str], media_type: str) -> bool:
    """Whether a codec's ``accepts`` set (media types, ``type/*`` families, ``*/*``)
    holds a media type."""
    return (
        media_type in accepts or f"{media_type.partition('/')[0]}/*" in accepts or "*/*" in accepts
    )


def check_base64(text: str, where: str) -> None:
    """A ConfigurationError naming ``where`` unless ``text`` is base64: the standard
    alphabet; line breaks, the URL-safe alphabet and missing padding are tolerated
    (Gemini, which parses it as protobuf JSON, takes them). Checked without decoding
    (about 1.5 ms per MB)."""
    raw = text.encode("ascii") if text.isascii() else b"\x80"
    body = raw.rstrip(_PADDING)
    padding = raw.count(b"=", len(body))
    size = len(body)
    if body.translate(None, _ALPHABET):
        if body.translate(None, _LENIENT):
            size = 1  # not base64
        else:
            size -= sum(body.count(c) for c in _SPACE)
    if size % 4 == 1 or padding > 2 or (padding and (size + padding) % 4):
        raise ConfigurationError(
            f"{where}: the base64 data is malformed ({len(text)} characters): give "
            "base64.b64encode(data).decode()"
        )
    if not size:
        raise ConfigurationError(f"{where}: the file is empty (no base64 data)")


def _data_url(url: str, where: str) -> tuple[str, bytes | None, str | None]:
    """A ``data:`` URL → (media type, bytes or None, base64 text or None)."""
    header, sep, payload = url.partition(",")
    if not sep:
        raise ConfigurationError(
            f"{where}: the data URL has no ',' before its data: write "
            "'data:<media type>;base64,<data>'"
        )
    params = header[5:].split(";")
    media_type = params[0].strip().lower()
    if "/" not in media_type:
        raise ConfigurationError(
            f"{where}: the data URL names no media type ({header[:40]!r}): write "
            "'data:image/png;base64,...'"
        )
    if params[-1].strip().lower() == "base64":
        check_base64(payload, where)
        return media_type, None, payload
    from urllib.parse import unquote_to_bytes

    data = unquote_to_bytes(payload)
    if not data:
        raise ConfigurationError(f"{where}: the file is empty (the data URL has no data)")
    return media_type, data, None


def _guess(name: str | None) -> str | None:
    if not name:
        return None
    import mimetypes  # here: its tables load on first use

    return mimetypes.guess_type(name.split("?")[0])[0]


def _string(value: Any, what: str, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ConfigurationError(f"{where}: {what} must be a string, not {type(value).__name__}")
    return value


def _image(part: Mapping[str, Any], where: str) -> FilePart:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else image
    detail = image.get("detail") if isinstance(image, Mapping) else None
    if not isinstance(url, str) or not url:
        raise ConfigurationError(
            f"{where}: an image_url part needs {{'image_url': {{'url': ...}}}} with an "
            "https URL or a data: URL"
        )
    detail = _string(detail, "image_url.detail", where)
    cache = part.get("cache_control")
    if url[:5].lower() == "data:":
        media_type, data, b64 = _data_url(url, where)
        return FilePart(media_type, data, detail=detail, cache_control=cache, b64=b64)
    media_type = _guess(url) or "image/jpeg"
    return FilePart(media_type, url=url, detail=detail, cache_control=cache)


def _audio(part: Mapping[str, Any], where: str) -> FilePart:
    audio = part.get("input_audio")
    data = audio.get("data") if isinstance(audio, Mapping) else None
    kind = audio.get("format") if isinstance(audio, Mapping) else None
    if not isinstance(data, str) or not isinstance(kind, str) or not kind:
        raise ConfigurationError(
            f"{where}: content parts of type 'input_audio' need {{'input_audio': "
            "{'data': <base64>, 'format': 'wav' or 'mp3'}}"
        )
    media_type = _AUDIO_TYPES.get(kind.lower()) or f"audio/{kind.lower()}"
    check_base64(data, where)
    return FilePart(media_type, cache_control=part.get("cache_control"), b64=data)


def _file(part: Mapping[str, Any], where: str) -> FilePart:
    file = part.get("file")
    if not isinstance(file, Mapping):
        raise ConfigurationError(
            f"{where}: a file part needs {{'file': {{'file_data': 'data:...;base64,...', "
            "'filename': ...}} or {'file': {'file_id': ...}}"
        )
    filename = _string(file.get("filename"), "file.filename", where)
    file_id = _string(file.get("file_id"), "file.file_id", where)
    file_data = _string(file.get("file_data"), "file.file_data", where)
    cache = part.get("cache_control")
    if file_id is not None and file_data is not None:
        raise ConfigurationError(f"{where}: give file.file_data or file.file_id, not both")
    if file_id:
        media_type = _guess(filename) or ""
        return FilePart(media_type, file_id=file_id, filename=filename, cache_control=cache)
    if not file_data or file_data[:5].lower() != "data:":
        raise ConfigurationError(
            f"{where}: file.file_data must be a data: URL "
            "('data:application/pdf;base64,...'), or give file.file_id"
        )
    media_type, data, b64 = _data_url(file_data, where)
    return FilePart(media_type, data, filename=filename, cache_control=cache, b64=b64)


def to_part(part: Any, where: str) -> TextPart | FilePart | Mapping[str, Any]:
    """One OpenAI-style content part → a neutral part; a dict of another type (a
    provider's own part) is returned as it is. Malformed parts are a
    ConfigurationError naming ``where`` (``messages[i].content[j]``)."""
    if type(part) is TextPart or type(part) is FilePart:
        return part
    if isinstance(part, str):
        return TextPart(part)
    if isinstance(part, File):
        return from_file(part)
    if not isinstance(part, Mapping):
        raise ConfigurationError(
            f"{where} must be a string or a dict with a 'type', not {type(part).__name__}"
        )
    kind = part.get("type")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise ConfigurationError(f"{where}: a text part needs a 'text' string")
        return TextPart(text, part.get("cache_control"))
    if kind == "image_url":
        return _image(part, where)
    if kind == "input_audio":
        return _audio(part, where)
    if kind == "file":
        return _file(part, where)
    return part


def from_file(file: File) -> FilePart:
    """A caller's :class:`~steer_llm_sdk.files.File` → the neutral part. The media type
    of a URL or a file id that does not tell it is ``""`` (unknown)."""
    media_type = file.media_type or ""
    if file.data is not None:
        return FilePart(media_type, file.data, filename=file.filename, detail=file.detail)
    if file.url is not None:
        return FilePart(media_type, url=file.url, filename=file.filename, detail=file.detail)
    media_type = media_type or _guess(file.filename) or ""
    return FilePart(media_type, file_id=file.file_id, filename=file.filename)


_NONE: frozenset[str] = frozenset()


def _facts(value: Any, accepts: frozenset[str]) -> frozenset[str]:
    if value is True:  # the old boolean facts: every accepted type
        return accepts
    return value or _NONE


def file_table(
    codec: Any, spec: Any = None, model: str = ""
) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """What a route can send: (media types as data, media types by URL, media types by
    file id), from the codec class's ``accepts`` / ``accepts_urls`` /
    ``accepts_file_ids``, narrowed per model where the codec says so
    (``narrow_files``); nothing for a provider whose spec says
    ``accepts_files=False`` (the local model: text only)."""
    if spec is not None and not getattr(spec, "accepts_files", True):
        return _NONE, _NONE, _NONE
    accepts = codec.accepts
    urls, ids = _facts(codec.accepts_urls, accepts), _facts(codec.accepts_file_ids, accepts)
    narrow = getattr(codec, "narrow_files", None)
    if narrow is not None:
        return narrow(spec, model, accepts, urls, ids)
    return accepts, urls, ids


def _listed(types: frozenset[str]) -> str:
    return ", ".join(sorted(types)) or "none"


def describe_table(codec: Any, spec: Any = None, model: str = "") -> str:
    """What a route takes, in words (for errors and the README)."""
    accepts, urls, ids = file_table(codec, spec, model)
    if not (accepts or urls or ids):
        return "text only"
    by_url = "the same" if urls == accepts else _listed(urls)
    by_id = "the same" if ids == accepts else _listed(ids)
    return f"as data: {_listed(accepts)}; by URL: {by_url}; by file id: {by_id}"


def check_part(part: FilePart, codec: Any, where: str, model: str = "", spec: Any = None) -> bool:
    """A ConfigurationError naming ``where``, the protocol, the part and what the
    protocol takes, when the route cannot send ``part``. Returns True for a URL the
    SDK must download first (the protocol takes its type only as data, or the URL
    does not tell its type)."""
    accepts, urls, ids = file_table(codec, spec, model)
    media = part.media_type
    if part.file_id is not None:
        ok = bool(ids) and (not media or takes(ids, media))
        what = f"a file id ({part.file_id!r}{', ' + media if media else ''})"
    elif part.url is not None:
        if media and takes(urls, media):
            return False  # the provider fetches it
        if (not media and accepts) or (media and takes(accepts, media)):
            return True  # downloaded by the SDK before the first attempt
        ok = False
        what = f"{media} by URL ({part.url[:80]})"
    else:
        ok = takes(accepts, media)
        what = f"{media} data"
    if ok:
        return False
    to = f"{model} ({codec.protocol} protocol)" if model else f"the {codec.protocol} protocol"
    raise ConfigurationError(
        f"{where}: {to} cannot take {what}; it takes {describe_table(codec, spec, model)}"
    )


def as_part(part: Any, codec: Any) -> TextPart | FilePart | Mapping[str, Any]:
    """For codecs: a neutral part as it is; an OpenAI-style one (a request built
    without the request layer) converted and checked."""
    if type(part) is TextPart or type(part) is FilePart:
        return part
    out = to_part(part, "a content part")
    if type(out) is FilePart:
        check_part(out, codec, "a content part")
    return out
