"""One HTTP request on a reusable libcurl easy handle, and the blocking transport of one probe.

The guarantees no server and no name may defeat are decided here, in libcurl's callbacks, where
libcurl cannot go around them:
- the egress policy runs in OPENSOCKETFUNCTION on each address libcurl is about to dial (every
  request, redirect hop, retry and address family: DNS rebinding and multi-address names stay
  blocked);
- only http and https, no proxy from the environment, no redirects followed by libcurl;
- the response head is bounded in bytes and in interim (1xx) responses, the decoded body by the
  request's cap, and the whole request by its timeout.

Nothing here needs an event loop: `linkprobe check` of one URL runs its probe on a
BlockingTransport without importing asyncio (transport.py drives the same handles from a loop).
"""

from __future__ import annotations

import os
import signal
import time
from _socket import socket  # socket.py's enums and wrappers: 0.4 MiB a one-URL check does without
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import pycurl

from linkprobe.engine.decode import Decode, decoder
from linkprobe.engine.egress import EgressPolicy
from linkprobe.engine.outcome import BodyState

if TYPE_CHECKING:
    import asyncio

MAX_HEAD_BYTES = 64 * 1024  # status lines and headers of one response, interim responses included
MAX_INTERIM = 8  # 1xx responses before the final one
REDIRECT_BODY_BYTES = 64 * 1024  # a redirect's body is read (keeping its connection) up to this
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
WANTED = frozenset({b"content-type", b"content-length", b"content-encoding", b"location", b"retry-after"})
DNS_CACHE_SECONDS = 60
# libcurl's DNS_CACHE_TIMEOUT of a transfer that neither checks the age of the entry it uses nor
# prunes the cache when it ends (transport.py prunes it at most once a second).
DNS_UNCHECKED = -1


POOL_PER_SLOT = 2  # connections kept open (idle ones included) per request slot


@dataclass(frozen=True, slots=True)
class Limits:
    """The pool's bounds: requests in flight at once, and per host. Connections open at once, idle
    keep-alive ones included, are at most POOL_PER_SLOT times the requests: enough to keep a
    connection between two requests to its host (shards.waves), however many hosts a run has."""

    requests: int
    per_host: int

    @property
    def connections(self) -> int:
        return self.requests * POOL_PER_SLOT


# Where the common systems keep their CA bundle (Debian and Ubuntu, Fedora and RHEL, openSUSE,
# Alpine, macOS with Homebrew's OpenSSL).
CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
    "/usr/local/etc/openssl/cert.pem",
)


def ca_bundle() -> str | None:
    """The system's CA certificates (SSL_CERT_FILE first): the libcurl of the wheel was built
    elsewhere and its own default path may not exist here. Not asked of Python's ssl module,
    which would load a second OpenSSL for a one-URL check."""
    given = os.environ.get("SSL_CERT_FILE")
    return given or next((path for path in CA_BUNDLES if os.path.exists(path)), None)


class Handle:
    """A reusable easy handle and the state of the request it is running.

    The callbacks are bound once, when the handle is made; `start` resets the per-request state.
    """

    __slots__ = (
        "blocked",
        "body",
        "cap",
        "curl",
        "decode",
        "dialled",
        "dns_timeout",
        "future",
        "head",
        "head_done",
        "head_left",
        "headers",
        "interim",
        "keep",
        "made",
        "page",
        "policy",
        "read",
        "refusal",
        "sent_head",
        "sent_headers",
        "sent_verify",
        "socket_error",
        "status",
    )

    def __init__(self, policy: EgressPolicy, cainfo: str | None) -> None:
        self.policy = policy
        self.curl = curl = pycurl.Curl()
        curl.handle = self  # the multi reports finished transfers by their easy handle
        curl.setopt(pycurl.HEADERFUNCTION, self._on_header)
        curl.setopt(pycurl.WRITEFUNCTION, self._on_body)
        curl.setopt(pycurl.OPENSOCKETFUNCTION, self._open_socket)
        curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.REDIR_PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.FOLLOWLOCATION, 0)  # redirects are followed by hand, hop by hop
        curl.setopt(pycurl.PROXY, "")  # "" ignores the proxy environment variables on purpose
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.ACCEPT_ENCODING, None)  # the header below; bodies are decoded in decode.py
        curl.setopt(pycurl.HTTP_CONTENT_DECODING, 0)
        curl.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_2TLS)  # HTTP/2 when offered over TLS
        curl.setopt(pycurl.DNS_CACHE_TIMEOUT, DNS_CACHE_SECONDS)
        self.dns_timeout = DNS_CACHE_SECONDS
        if cainfo is not None:
            curl.setopt(pycurl.CAINFO, cainfo)
        self.future: asyncio.Future[tuple[int, str]] | None = None
        self.page: bytearray | None = None
        self.sent_headers: list[str] | None = None
        # The method and TLS checks last set: most requests repeat them (setopt only on a change).
        self.sent_head: bool | None = None
        self.sent_verify: bool | None = None
        self.made: list[socket] = []
        self._reset(0, False, False)

    def _reset(self, cap: int, keep: bool, head: bool) -> None:
        self.status: int | None = None
        self.headers: dict[bytes, bytes] = {}
        self.head_left = MAX_HEAD_BYTES
        self.head_done = False
        self.interim = 0
        self.refusal: str | None = None
        self.blocked: list[str] = []
        self.dialled = 0
        self.socket_error: OSError | None = None
        self.body: BodyState | None = None
        self.read = 0
        self.cap = cap
        self.keep = keep
        self.decode: Decode | None = None
        self.head = head

    def start(
        self,
        url: str,
        head: bool,
        headers: list[str],
        timeout: float,
        connect_timeout: float,
        verify_tls: bool,
        cap: int,
        page: bytearray | None,
    ) -> None:
        """Set up one request: `page` receives the decoded body (else it is counted and dropped)."""
        curl = self.curl
        curl.setopt(pycurl.URL, url)
        if head is not self.sent_head:
            curl.setopt(pycurl.NOBODY, 1) if head else curl.setopt(pycurl.HTTPGET, 1)
            self.sent_head = head
        if headers is not self.sent_headers:  # one list per options object: set when it changes
            curl.setopt(pycurl.HTTPHEADER, headers)
            self.sent_headers = headers
        curl.setopt(pycurl.TIMEOUT_MS, max(1, int(timeout * 1000)))
        curl.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(connect_timeout * 1000)))
        if verify_tls is not self.sent_verify:
            curl.setopt(pycurl.SSL_VERIFYPEER, verify_tls)
            curl.setopt(pycurl.SSL_VERIFYHOST, 2 if verify_tls else 0)
            self.sent_verify = verify_tls
        self._reset(cap, page is not None, head)
        self.page = page
        if page is not None:
            page.clear()  # a retry or a redirect starts over

    def post(self, body: bytes) -> None:
        """Make the request `start` set up a POST of `body` (a webhook delivery); the next `start`
        is a GET or HEAD again."""
        self.curl.setopt(pycurl.POSTFIELDS, body)
        self.sent_head = None  # the method is no longer what `start` last set

    def expire_dns(self, seconds: int) -> None:
        """Set libcurl's DNS_CACHE_TIMEOUT for this handle's next transfers (when it changes)."""
        if seconds != self.dns_timeout:
            self.curl.setopt(pycurl.DNS_CACHE_TIMEOUT, seconds)
            self.dns_timeout = seconds

    # -- libcurl's callbacks: they run inside socket_action, on the event loop's thread --

    def _open_socket(self, purpose: int, address: Any) -> Any:
        ip = address.addr[0]
        why = self.policy.reason(ip)
        if why is not None:
            self.blocked.append(f"{ip} is {why}")
            return pycurl.SOCKET_BAD
        try:
            made = socket(address.family, address.socktype, address.protocol)
        except OSError as exc:  # out of descriptors: our own resource, said as such
            self.socket_error = exc
            return pycurl.SOCKET_BAD
        self.dialled += 1
        self.made.append(made)  # pycurl dials a duplicate of its descriptor: this one is closed
        return made  # after the transfer (left to the collector, it would warn, at a cost)

    def _on_header(self, line: bytes) -> int | None:
        self.head_left -= len(line)
        if self.head_left < 0:
            return self._refuse(f"response head larger than {MAX_HEAD_BYTES} bytes")
        if line[:5] == b"HTTP/":
            return self._status_line(line)
        name, colon, value = line.partition(b":")
        if colon:
            name = name.strip().lower()
            if name in WANTED:
                self.headers[name] = value.strip()
        elif line.strip():
            return None  # not a header (a folded continuation): nothing to keep
        elif self.status is not None and not 100 <= self.status < 200 and not self.head_done:
            self.head_done = True  # the blank line after the final head (not after trailers)
            return None if self.head else self._head_ended()
        return None

    def _status_line(self, line: bytes) -> int | None:
        parts = line.split(None, 2)
        try:
            status = int(parts[1])
        except (IndexError, ValueError):
            return self._refuse("malformed status line")
        if 100 <= status < 200 and status != 101:
            self.interim += 1
            if self.interim > MAX_INTERIM:
                return self._refuse(f"more than {MAX_INTERIM} interim (1xx) responses")
        self.status = status
        self.headers = {}
        return None

    def _refuse(self, reason: str) -> int:
        self.refusal = reason
        return -1  # any length but the one given aborts the transfer

    def _head_ended(self) -> int | None:
        """The final head is in: decide how its body is read (a redirect's body is not decoded)."""
        if self.status in REDIRECT_STATUSES and b"location" in self.headers:
            self.cap, self.keep = REDIRECT_BODY_BYTES, False
            return None
        encoding = self.headers.get(b"content-encoding")
        try:
            self.decode = decoder(None if encoding is None else encoding.decode("latin-1"))
        except KeyError:
            self.body = BodyState.UNDECODABLE
            return -1  # not read: nothing could be made of it
        declared = self.declared_length()
        if self.decode is None and not self.keep and declared is not None and declared > self.cap:
            self.body = BodyState.TRUNCATED  # dropped rather than read for nothing
            return -1
        return None

    def _on_body(self, data: bytes) -> int | None:
        if self.decode is not None:
            try:
                data = self.decode(data, self.cap - self.read + 1)
            except Exception:  # zlib.error, brotli.error, ZstdError...: corrupt in its encoding
                self.body = BodyState.UNDECODABLE
                return 0
        room = self.cap - self.read
        if self.keep:
            assert self.page is not None
            self.page += data[:room]
        self.read += len(data)
        if len(data) > room:
            self.body = BodyState.TRUNCATED
            return 0  # stops the transfer: the connection is dropped
        return None

    # -- after the transfer --

    def close_made(self) -> None:
        """Close the socket objects made for libcurl (it dials duplicates of their descriptors)."""
        for made in self.made:
            made.close()
        self.made.clear()

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return None if value is None else value.decode("latin-1")

    def declared_length(self) -> int | None:
        value = self.headers.get(b"content-length")
        return int(value) if value is not None and value.isdigit() else None


class Sender(Protocol):
    """What the prober needs of a transport: handles, requests sent on them, and a pause."""

    def handle(self) -> Handle: ...

    def release(self, handle: Handle) -> None: ...

    async def send(self, handle: Handle) -> tuple[int, str]: ...

    async def pause(self, seconds: float) -> None: ...


class BlockingTransport:
    """One request at a time on one easy handle, performed in the calling thread: a single probe
    without an event loop (`linkprobe check` of one URL; its coroutines never suspend). Ctrl-C
    aborts the transfer at libcurl's next progress call and raises KeyboardInterrupt."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._handle = Handle(policy, ca_bundle())
        self._handle.curl.setopt(pycurl.NOPROGRESS, 0)
        self._handle.curl.setopt(pycurl.XFERINFOFUNCTION, self._progress)
        self._interrupted = False

    def handle(self) -> Handle:
        return self._handle

    def release(self, handle: Handle) -> None:
        handle.page = None

    async def send(self, handle: Handle) -> tuple[int, str]:
        with self._interruptible():
            try:
                handle.curl.perform()
            except pycurl.error as exc:
                code, message = exc.args
                return int(code), str(message)
            finally:
                handle.close_made()
                if self._interrupted:  # also when the transfer ended as Ctrl-C came
                    raise KeyboardInterrupt
        return 0, ""

    async def pause(self, seconds: float) -> None:
        time.sleep(seconds)  # noqa: ASYNC251 (no loop to block; Ctrl-C raises KeyboardInterrupt)

    def close(self) -> None:
        self._handle.curl.close()

    def _progress(self, *_: int) -> int:
        return 1 if self._interrupted else 0  # non-zero aborts the transfer

    @contextmanager
    def _interruptible(self) -> Iterator[None]:
        """While libcurl runs, SIGINT only marks the transfer to abort: raised inside one of its
        callbacks, KeyboardInterrupt would be printed and lost."""
        try:
            previous = signal.signal(signal.SIGINT, self._on_interrupt)
        except ValueError:  # not the main thread: no signal handling of ours
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _on_interrupt(self, signum: int, frame: Any) -> None:
        self._interrupted = True
