"""Parse and normalise one input URL into the URL the engine will request.

yarl's URL defines the canonical form (percent-encoding, IDNA hosts, dot segments, default ports).
A URL already in that form, the common case, is recognised by one regular expression and never
parsed by yarl, which is imported only for the rest: a one-URL check of a plain URL runs without
yarl and its dependencies (about 1.2 MB of a 25 MB budget), and the hot path of a large check
skips building a yarl URL per input.

Numeric IPv4 hosts are canonicalised the way browsers do (WHATWG URL standard), so that
`http://2130706433/`, `http://0x7f.1/` and `http://127.1/` are recognised as 127.0.0.1 before
any socket exists. The socket-level egress guard still checks every dialled address.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import TYPE_CHECKING, NamedTuple

from linkprobe.engine.errors import InvalidURL, ProbeFailure, Unsupported

if TYPE_CHECKING:
    from yarl import URL

SCHEMES = frozenset({"http", "https"})
MAX_URL_LENGTH = 8192
# A scheme as RFC 3986 spells it, and its name alone (yarl also takes `127.0.0.1` as one).
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*:")
_SCHEME_NAME = re.compile(r"[a-z][a-z0-9+.-]*$")
# `example.com:8080/` and `localhost:8080/` are a host and a port written without a scheme.
HOST_AND_PORT = re.compile(r"(?:[^:/?#]*\.[^:/?#]*|localhost):", re.IGNORECASE)
NO_SCHEME = "URL has no scheme (expected http:// or https://; a relative link needs a base URL)"
# After IDNA encoding a host name is ASCII letters, digits, '-', '_' and dots only.
_HOST_NAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$")
_IPV4_PART = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")


# The URL-list rule, shared by `linkprobe check` and the API's text uploads: `\r`, `\n` and
# `\r\n` all end a line; `#` at a line's start or after whitespace starts a comment (a `#`
# inside a URL is its fragment); blank lines are skipped.
_LINE_END = re.compile(r"[\r\n]")
_COMMENT = re.compile(r"(?:^|\s)#.*")


# A line holds a URL when its first non-blank character is not `#` (the rule above, as one C-level
# search over a block of whole lines: counting needs no line objects; tests check it agrees).
# Led by a line end, the pattern starts with a character class the regex engine scans for fast
# (3.6x faster than with `\A|` in front); the text's first line is matched apart.
_URL_LINE = re.compile(r"[\r\n][^\S\r\n]*[^\s#]")
_FIRST_URL_LINE = re.compile(r"[^\S\r\n]*[^\s#]")


def count_url_lines(text: str) -> int:
    """How many URLs url_lines would yield from `text`, which starts at a line's start."""
    return (_FIRST_URL_LINE.match(text) is not None) + len(_URL_LINE.findall(text))


def _url_of(line: str) -> str:
    if "#" in line:
        line = _COMMENT.sub("", line, count=1)
    return line.strip()


def url_lines(chunks: Iterable[str]) -> Iterator[str]:
    """URLs from a URL list given as text in pieces of any size (lines, or blocks of a file)."""
    pending = ""
    for chunk in chunks:
        *complete, pending = _LINE_END.split(pending + chunk if pending else chunk)
        for line in complete:
            if url := _url_of(line):
                yield url
    if url := _url_of(pending):
        yield url


def numbered_url_lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line, URL) of a URL list held whole: where each URL of it was found."""
    for number, line in enumerate(_LINE_END.split(text.replace("\r\n", "\n")), 1):
        if url := _url_of(line):
            yield number, url


def _ipv4_part(part: str) -> int:
    if part.startswith("0x"):
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        if not part.isdigit() or any(c in "89" for c in part):
            raise InvalidURL(f"invalid octal IPv4 part {part!r}")
        return int(part, 8)
    return int(part)


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"^{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}$")


def _plain_dotted_quad(host: str) -> bool:
    return _DOTTED_QUAD.match(host) is not None


def parse_ipv4_host(host: str) -> str | None:
    """Return the dotted-quad form of a WHATWG IPv4 host, or None when the host is a name."""
    if _plain_dotted_quad(host):
        return host  # the common case, without ipaddress
    parts = host.lower().rstrip(".").split(".")
    if not parts[-1] or not _IPV4_PART.match(parts[-1]):
        return None  # ends in a non-numeric label: a domain name
    if len(parts) > 4 or not all(_IPV4_PART.match(p) for p in parts):
        raise InvalidURL(f"invalid IPv4 host {host!r}")
    numbers = [_ipv4_part(p) for p in parts]
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise InvalidURL(f"IPv4 host {host!r} out of range")
    value = numbers[-1]
    for position, number in enumerate(numbers[:-1]):
        value += number << (8 * (3 - position))
    return str(ipaddress.IPv4Address(value))


class Target(NamedTuple):
    """A URL to request, canonical: `text` is what libcurl is given; `host` is lower case and
    IDNA-encoded (an IPv6 literal without brackets); `port` is explicit or the scheme's default."""

    scheme: str
    host: str
    port: int
    text: str

    def __str__(self) -> str:
        return self.text


DEFAULT_PORTS = {"http": 80, "https": 443}
# A URL yarl would leave as it is (tests/engine/test_urls.py checks this against yarl): http(s)
# in lower case, a lower-case ASCII host, no userinfo, a port without leading zeros, and a path
# and query of characters no requoting touches: no '%', no fragment, no dot segment, no empty
# query, no query without a path. Anything else goes through yarl.
_PLAIN_CHAR = r"[A-Za-z0-9\-._~!$'()*,+&=;:@/]"
_CANONICAL = re.compile(
    rf"(https?)://([a-z0-9_-]+(?:\.[a-z0-9_-]+)*)(?::([1-9][0-9]{{0,4}}))?"
    rf"((?:/{_PLAIN_CHAR}*(?:\?(?:{_PLAIN_CHAR}|\?)+)?)?)"
)
_DOT_SEGMENT = re.compile(r"/\.\.?(?:[/?]|$)")


def _plain(text: str) -> Target | None:
    """`text` as a Target when it is already canonical, else None (then yarl decides)."""
    match = _CANONICAL.fullmatch(text)
    if match is None:
        return None
    scheme, host, port_text, rest = match.groups()
    port = int(port_text) if port_text else DEFAULT_PORTS[scheme]
    if port > 65535 or (port_text and port == DEFAULT_PORTS[scheme]) or _DOT_SEGMENT.search(rest):
        return None
    try:
        if _canonical_host(host) != host:  # a numeric form of an IPv4 address, say
            return None
    except InvalidURL:
        return None
    return Target(scheme, host, port, text)


def _checked_host(url: URL) -> str:
    raw_host = url.raw_host
    if not raw_host:
        raise InvalidURL("URL has no host")
    return _canonical_host(raw_host)


@lru_cache(maxsize=16384)
def _canonical_host(raw_host: str) -> str:
    """The host to request, from yarl's raw form (IDNA-encoded, so fullwidth digits are already
    ASCII). Cached: inputs repeat hosts (many links per site), and this runs for every URL and
    every redirect hop."""
    if ":" in raw_host:  # an IPv6 literal, already validated by yarl
        return raw_host
    dotted = parse_ipv4_host(raw_host)
    if dotted is not None:
        return dotted
    if len(raw_host) > 253 or not _HOST_NAME.match(raw_host.lower()):
        raise InvalidURL(f"invalid host name {raw_host!r}")
    return raw_host.lower()


def other_scheme(url: str) -> str | None:
    """The scheme of a link no HTTP probe can check (mailto:, tel:, javascript:, ftp:, file:...);
    None for http(s) and for text without a scheme (a relative link, `example.com:80/`)."""
    if url.startswith(("https://", "http://")):
        return None  # the common case, before any regular expression
    text = url.strip()
    match = _SCHEME.match(text)
    return None if match is None else _foreign(text, match.group(0)[:-1].lower())


def _foreign(text: str, scheme: str) -> str | None:
    """`scheme` (lower case, as `text` starts) when it names a scheme that is not probed."""
    if scheme in SCHEMES or not _SCHEME_NAME.match(scheme) or HOST_AND_PORT.match(text):
        return None
    return scheme


def _refused(text: str, scheme: str, failure: str, redirect: bool) -> ProbeFailure:
    """Why `text`, whose scheme is not http(s), is not probed: another scheme is `unsupported`
    (one message for every caller); no scheme, or a host and port without one, is invalid. A
    redirect resolved against an http(s) URL always has a scheme: any other is not followed."""
    foreign = scheme if redirect and scheme else _foreign(text, scheme)
    if foreign is not None:
        return Unsupported(f"{foreign}: links are not checked")
    return InvalidURL(failure)


def normalise(raw: str, base: Target | None = None) -> Target:
    """Validate `raw` (resolved against `base` for redirects) and return the URL to request.

    Raises Unsupported for a URL, or a redirect, of a scheme the engine does not probe (mailto:,
    ftp:, file:, ...), and InvalidURL for anything else that cannot be probed.
    """
    text = raw.strip()
    if not text:
        raise InvalidURL("empty URL")
    if len(text) > MAX_URL_LENGTH:
        raise InvalidURL(f"URL longer than {MAX_URL_LENGTH} characters")
    plain = _plain(text)  # absolute: the same whatever the base
    if plain is not None:
        return plain
    url = _parsed(text, base)
    port = url.port  # explicit (0 too) or the scheme's default, which yarl knows for http(s)
    assert url.raw_host is not None and port is not None  # _checked_host refused a URL without
    return Target(url.scheme, url.raw_host, port, str(url))


def _parsed(text: str, base: Target | None) -> URL:
    """`text` (resolved against `base`) canonicalised by yarl, or why it cannot be probed."""
    from yarl import URL  # only for URLs not already canonical: see the module's docstring

    try:
        url = URL(text)
        if base is not None:
            url = URL(base.text).join(url)
    except (ValueError, TypeError, IndexError) as exc:  # IndexError: yarl 1.25 on `http://[::1]@`
        written = _SCHEME.match(text)
        scheme = written.group(0)[:-1].lower() if written else ""
        raise _refused(text, scheme, f"unparsable URL: {exc}", redirect=False) from None
    scheme = url.scheme.lower()
    if scheme not in SCHEMES:
        raise _refused(text, scheme, NO_SCHEME, redirect=base is not None)
    if "@" in url.raw_authority:  # any userinfo, even empty; one read instead of two parses
        raise InvalidURL("URLs with credentials (user:pass@) are refused")
    host = _checked_host(url)
    if scheme == url.scheme and host == url.raw_host and not url.raw_fragment:
        return url  # nothing to change: skip rebuilding
    try:
        return url.with_scheme(scheme).with_host(host).with_fragment(None)
    except ValueError as exc:
        raise InvalidURL(f"unparsable URL: {exc}") from None
