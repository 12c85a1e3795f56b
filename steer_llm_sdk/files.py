"""``File``: an image, a document, a recording or a provider's file reference, as one
type the caller writes and the answer carries.

``File("cat.jpg")`` reads a path; ``File(data=b"...")`` takes bytes;
``File(url="https://...")`` a URL; ``File(file_id="file-abc")`` a file uploaded to a
provider. The media type of bytes comes from the bytes (their magic numbers), never
from a file name or a server's header; ``media_type=`` names it where the bytes do
not tell (plain text, CSV) and for a URL whose path has no telling extension.
Standard library only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError

__all__ = ["File", "answer_file", "sniff"]

# (offset, magic bytes, media type), tried in order. Containers whose brand sits
# further in (RIFF, ftyp, FORM) are told apart in sniff().
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"fLaC", "audio/flac"),
    (0, b"OggS", "audio/ogg"),
    (0, b"ID3", "audio/mpeg"),
    (0, b"\x1a\x45\xdf\xa3", "video/webm"),
    (0, b"BM", "image/bmp"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
)
_RIFF = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}
_FORM = {b"AIFF": "audio/aiff", b"AIFC": "audio/aiff"}
_FTYP = {
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"mif1": "image/heif",
    b"avif": "image/avif",
    b"M4A ": "audio/mp4",
    b"M4B ": "audio/mp4",
    b"qt  ": "video/quicktime",
    b"3gp4": "video/3gpp",
    b"3gp5": "video/3gpp",
}
# Text types the bytes cannot tell apart: taken from media_type= or the file name's
# extension, once the bytes are checked to be UTF-8 text.
_TEXT_EXTENSIONS = {
    ".txt": "text/plain",
    ".md": "text/markdown",
    ".csv": "text/csv",
    ".html": "text/html",
    ".htm": "text/html",
    ".xml": "text/xml",
    ".json": "application/json",
}


def sniff(data: bytes) -> str | None:
    """The media type the bytes' magic numbers tell, or None."""
    head = data[:32]
    for offset, magic, media_type in _MAGIC:
        if head.startswith(magic, offset):
            return media_type
    if head[:4] == b"RIFF" and len(head) >= 12:
        return _RIFF.get(head[8:12])
    if head[:4] == b"FORM" and len(head) >= 12:
        return _FORM.get(head[8:12])
    if head[4:8] == b"ftyp" and len(head) >= 12:
        return _FTYP.get(head[8:12], "video/mp4")
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "audio/mpeg"  # an MPEG audio frame header without an ID3 tag
    return None


def _is_text(data: bytes) -> bool:
    sample = data[:65536]
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the sample's end
        return exc.start >= len(sample) - 3 and len(data) > len(sample)
    return True


def _media_type(data: bytes, given: str | None, name: str | None, where: str) -> str:
    sniffed = sniff(data)
    if sniffed is not None:
        return sniffed  # the bytes win over a name or a caller's guess
    if given:
        return given.lower()
    extension = os.path.splitext(name or "")[1].lower()
    if extension in _TEXT_EXTENSIONS and _is_text(data):
        return _TEXT_EXTENSIONS[extension]
    raise ConfigurationError(
        f"{where}: cannot tell the file's type from its bytes ({len(data)} bytes, "
        f"starting {data[:8]!r}): pass media_type=, e.g. File(..., media_type='text/plain')"
    )


@dataclass(frozen=True, slots=True, init=False)
class File:
    """A file in a prompt or an answer: exactly one of ``data`` (bytes, read from
    ``path`` when given one), ``url`` and ``file_id``.

    ``media_type`` is what the bytes are (sniffed; ``media_type=`` where they do not
    tell); for a URL, the type given or told by its extension, else None (then the
    SDK downloads it and sniffs the bytes where it must). ``detail`` is OpenAI's
    image detail (``"low"``, ``"high"``, ``"auto"``).
    """

    data: bytes | None
    url: str | None
    file_id: str | None
    media_type: str | None
    filename: str | None
    detail: str | None

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        data: bytes | None = None,
        url: str | None = None,
        file_id: str | None = None,
        media_type: str | None = None,
        filename: str | None = None,
        detail: str | None = None,
    ) -> None:
        given = sum(x is not None for x in (path, data, url, file_id))
        if given != 1:
            raise ConfigurationError(
                "File takes exactly one of a path, data=, url= and file_id= "
                f"({given} given): File('cat.jpg'), File(data=b'...'), "
                "File(url='https://...'), File(file_id='file-abc')"
            )
        if media_type is not None and (not isinstance(media_type, str) or "/" not in media_type):
            raise ConfigurationError(
                f"File: media_type must be like 'image/png', not {media_type!r}"
            )
        if path is not None:
            name = os.fspath(path)
            try:
                with open(name, "rb") as handle:
                    data = handle.read()
            except OSError as exc:
                raise ConfigurationError(
                    f"File({name!r}): cannot read it ({exc.strerror})"
                ) from None
            filename = filename or os.path.basename(name)
        if data is not None:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise ConfigurationError(f"File: data must be bytes, not {type(data).__name__}")
            data = bytes(data)
            if not data:
                raise ConfigurationError(f"File({filename or 'data'}): the file is empty")
            media_type = _media_type(data, media_type, filename, f"File({filename or 'data'})")
        elif url is not None:
            if not isinstance(url, str) or not url.lower().startswith(("https://", "http://")):
                raise ConfigurationError(f"File: url must be an http(s) URL, not {url!r}")
            if media_type is None:
                import mimetypes  # here: its tables load on first use

                media_type = mimetypes.guess_type(url.split("?")[0].split("#")[0])[0]
        elif not isinstance(file_id, str) or not file_id:
            raise ConfigurationError(f"File: file_id must be a non-empty string, not {file_id!r}")
        object.__setattr__(self, "data", data)
        object.__setattr__(self, "url", url)
        object.__setattr__(self, "file_id", file_id)
        object.__setattr__(self, "media_type", media_type.lower() if media_type else None)
        object.__setattr__(self, "filename", filename)
        object.__setattr__(self, "detail", detail)

    def __repr__(self) -> str:  # never the bytes
        if self.data is not None:
            what = f"{len(self.data)} bytes"
        elif self.url is not None:
            what = f"url={self.url[:80]!r}"
        else:
            what = f"file_id={self.file_id!r}"
        name = f", filename={self.filename!r}" if self.filename else ""
        return f"File({what}, media_type={self.media_type!r}{name})"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description (no bytes): for logs and telemetry."""
        return {
            "media_type": self.media_type,
            "size": len(self.data) if self.data is not None else None,
            "url": self.url,
            "file_id": self.file_id,
            "filename": self.filename,
        }


def answer_file(data: bytes, media_type: str | None, filename: str | None = None) -> File:
    """A file a model returned: the type its bytes tell, else the one the provider
    named (raw PCM audio has no magic number: ``audio/pcm`` is taken as named, never
    sniffed, since its samples may look like anything)."""
    named = (media_type or "").lower() or None
    told = None if named == "audio/pcm" else sniff(data)
    file = object.__new__(File)
    for name, value in (
        ("data", bytes(data)),
        ("url", None),
        ("file_id", None),
        ("media_type", told or named or "application/octet-stream"),
        ("filename", filename),
        ("detail", None),
    ):
        object.__setattr__(file, name, value)
    return file
