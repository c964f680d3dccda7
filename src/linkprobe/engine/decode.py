"""Content-Encoding decoding of a response body, bounded in output whatever the input.

Decoded here rather than by libcurl: the libcurl of the pycurl wheel has no zstd, and libcurl
cannot pass an encoding it does not know through (it fails the transfer), so decoding gzip,
deflate and br in libcurl and zstd here would need to know the encoding before the request.
Each decoder is C underneath (zlib, Brotli, zstd); the engine advertises exactly ACCEPTED.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

# Decodes one block of input into at most `limit` bytes of output (more input is then refused:
# the body is cut at the cap). Raises ValueError or the codec's error on corrupt input.
Decode = Callable[[bytes, int], bytes]

ACCEPTED = "gzip, deflate, br, zstd"
MAX_CODINGS = 5  # codings of one body at most (libcurl's own bound): more is refused as undecodable


def _zlib(wbits: int) -> Decode:
    state = zlib.decompressobj(wbits)
    return state.decompress


def _deflate() -> Decode:
    """`deflate` is zlib-wrapped by the standard and raw by some servers: the first block decides."""
    chosen: list[Decode] = []

    def decode(data: bytes, limit: int) -> bytes:
        if not chosen:
            wrapped = len(data) >= 2 and (data[0] & 0x0F) == 8 and (data[0] << 8 | data[1]) % 31 == 0
            chosen.append(_zlib(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS))
        return chosen[0](data, limit)

    return decode


def _brotli() -> Decode:
    import brotli

    state: Any = brotli.Decompressor()

    def decode(data: bytes, limit: int) -> bytes:
        out: bytes = state.process(data, output_buffer_limit=limit)
        return out

    return decode


def _zstd() -> Decode:
    try:
        from compression import zstd  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from backports import zstd  # type: ignore[no-redef,import-not-found,unused-ignore]
    state: Any = zstd.ZstdDecompressor()

    def decode(data: bytes, limit: int) -> bytes:
        out: bytes = state.decompress(data, max_length=limit)
        return out

    return decode


MAKERS: dict[str, Callable[[], Decode]] = {
    "gzip": lambda: _zlib(16 + zlib.MAX_WBITS),
    "x-gzip": lambda: _zlib(16 + zlib.MAX_WBITS),
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}


def decoder(content_encoding: str | None) -> Decode | None:
    """The decoder of a Content-Encoding header (codings applied in order, undone in reverse);
    None for identity. Raises KeyError for a coding that is not decoded here."""
    if content_encoding is None:
        return None
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    if len(codings) > MAX_CODINGS:
        raise KeyError(content_encoding)
    stages = [MAKERS[c]() for c in reversed(codings) if c and c != "identity"]
    if not stages:
        return None
    if len(stages) == 1:
        return stages[0]

    def chained(data: bytes, limit: int) -> bytes:
        for stage in stages:
            data = stage(data, limit)
        return data

    return chained
