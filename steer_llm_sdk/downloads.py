"""The pre-send step that resolves a request's files, and the guarded downloader.

A call whose request holds URLs the provider does not fetch (``ChatRequest.unresolved``,
found by the request layer) gets :func:`resolve_files` as a *before-send hook*
(``Call.before_send``): the pipeline awaits each hook once, when the call starts and
before its first attempt, never per attempt or per chunk; a call without such parts
has no hook and pays nothing. A hook takes the call and its deadline and may rewrite
``call.request.messages`` (here: a URL part becomes a data part; the Files API
upload of large inline data plugs in the same way).

:func:`download` fetches one URL with httpx, bounded: at most ``max_download_bytes``
(the body is read in pieces and dropped past the cap), within the call's connection
and read timeouts and its total deadline, at most 3 redirects, and only to public
addresses unless ``allow_private_urls``: the host is resolved and every address
checked (again after each redirect), and the request goes to the checked address
(the host name kept for the Host header and TLS), so a DNS answer cannot change
between the check and the connection. The media type comes from the bytes, never
from the server's ``Content-Type``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
from dataclasses import replace
from typing import Any

from .content import FilePart, check_part
from .errors import ConfigurationError, FileDownloadError
from .files import File, sniff
from .providers import codec_class

__all__ = ["MAX_REDIRECTS", "download", "resolve_files"]

MAX_REDIRECTS = 3
_TEXTS = ("text/", "application/json", "application/xml")
_PIECE = 64 * 1024


def _name(url: str) -> str:
    return url.split("?")[0].split("#")[0]


def _refused(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


async def _addresses(host: str, port: int, url: str, allow_private: bool) -> list[str]:
    """The host's addresses, each checked: a loopback, private, link-local or other
    non-public address refuses the URL (unless allowed)."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
        found = [str(literal)]
    except ValueError:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=1)  # SOCK_STREAM
        except OSError as exc:
            raise FileDownloadError(
                f"cannot download {_name(url)}: the host {host!r} does not resolve ({exc})",
                url=_name(url),
            ) from None
        found = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private:
        for address in found:
            if _refused(ipaddress.ip_address(address.split("%")[0])):
                raise FileDownloadError(
                    f"refused to download {_name(url)}: {host} resolves to {address}, a "
                    "loopback, private or link-local address; pass "
                    "allow_private_urls=True (SteerLLMClient or StreamingOptions) to allow it",
                    url=_name(url),
                )
    return found


async def download(
    url: str,
    *,
    max_bytes: int,
    allow_private: bool = False,
    connect_timeout: float | None = 10.0,
    read_timeout: float | None = 120.0,
    deadline: float | None = None,
) -> bytes:
    """The bytes at ``url`` (http or https), bounded as the module says; a
    :class:`FileDownloadError` naming the URL otherwise."""
    import httpx

    timeout = httpx.Timeout(
        connect=connect_timeout, read=read_timeout, write=read_timeout, pool=connect_timeout
    )
    async with httpx.AsyncClient(timeout=timeout, trust_env=False) as client:
        now = asyncio.get_running_loop().time()
        remaining = None if deadline is None else max(deadline - now, 0.0)
        try:
            return await asyncio.wait_for(_fetch(client, url, max_bytes, allow_private), remaining)
        except (TimeoutError, httpx.TimeoutException):
            raise FileDownloadError(
                f"cannot download {_name(url)}: timed out", url=_name(url)
            ) from None
        except httpx.HTTPError as exc:
            raise FileDownloadError(
                f"cannot download {_name(url)}: {type(exc).__name__}: {exc}", url=_name(url)
            ) from None


async def _fetch(client: Any, url: str, max_bytes: int, allow_private: bool) -> bytes:
    import httpx

    first = url
    for _hop in range(MAX_REDIRECTS + 1):
        target = httpx.URL(url)
        if target.scheme not in ("http", "https") or not target.host:
            raise FileDownloadError(
                f"cannot download {_name(url)}: only http(s) URLs are downloaded", url=_name(url)
            )
        port = target.port or (443 if target.scheme == "https" else 80)
        addresses = await _addresses(target.host, port, url, allow_private)
        request = client.build_request(
            "GET",
            target.copy_with(host=addresses[0]),
            headers={"Host": target.netloc.decode("ascii"), "Accept": "*/*"},
            extensions={"sni_hostname": target.host},
        )
        response = await client.send(request, stream=True)
        try:
            if response.status_code in (301, 302, 303, 307, 308):
                location = response.headers.get("location")
                if not location:
                    raise FileDownloadError(
                        f"cannot download {_name(url)}: a redirect with no Location",
                        url=_name(url),
                    )
                url = str(target.join(location))
                continue
            if response.status_code >= 400:
                raise FileDownloadError(
                    f"cannot download {_name(url)}: HTTP {response.status_code}",
                    url=_name(url),
                    status_code=response.status_code,
                )
            return await _body(response, url, max_bytes)
        finally:
            await response.aclose()
    raise FileDownloadError(
        f"cannot download {_name(first)}: more than {MAX_REDIRECTS} redirects", url=_name(first)
    )


async def _body(response: Any, url: str, max_bytes: int) -> bytes:
    def too_large() -> FileDownloadError:
        return FileDownloadError(
            f"cannot download {_name(url)}: larger than max_download_bytes="
            f"{max_bytes:,} (StreamingOptions); upload it or raise the cap",
            url=_name(url),
        )

    length = response.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise too_large()
    pieces: list[bytes] = []
    size = 0
    async for piece in response.aiter_bytes(_PIECE):  # decoded: the cap counts those
        size += len(piece)
        if size > max_bytes:
            raise too_large()
        pieces.append(piece)
    return b"".join(pieces)


async def resolve_files(call: Any, deadline: float | None) -> None:
    """The before-send hook: download every URL of ``call.request.unresolved``, sniff
    its bytes and put a data part in its place, checked again against what the route
    takes."""
    request = call.request
    options = call.options
    codec = codec_class(call.provider.protocol)
    for i, j in request.unresolved:
        content = request.messages[i]["content"]
        part: FilePart = content[j]
        url = part.url or ""
        where = f"messages[{i}].content[{j}]"
        data = await download(
            url,
            max_bytes=options.max_download_bytes,
            allow_private=bool(options.allow_private_urls),
            connect_timeout=options.connection_timeout,
            read_timeout=options.read_timeout,
            deadline=deadline,
        )
        name = part.filename or os.path.basename(_name(url)) or None
        # The bytes tell the type; a type given or guessed from the URL only for text,
        # which has no magic number (the server's Content-Type is never read).
        given = part.media_type if part.media_type.startswith(_TEXTS) else None
        try:
            if sniff(data) is None and given is None:
                raise ConfigurationError(
                    f"its bytes are of no type the SDK can tell ({len(data)} bytes, "
                    f"starting {data[:8]!r})"
                )
            file = File(data=data, media_type=given, filename=name)
        except ConfigurationError as exc:
            raise FileDownloadError(
                f"{where}: downloaded {_name(url)}: {exc}", url=_name(url)
            ) from None
        got = replace(part, media_type=file.media_type or "", data=file.data, url=None)
        try:
            check_part(got, codec, where, call.model, call.provider)
        except ConfigurationError as exc:
            raise FileDownloadError(
                f"{exc} (downloaded from {_name(url)})", url=_name(url)
            ) from None
        content[j] = got
    request.unresolved = []
