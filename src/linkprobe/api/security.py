"""Who is calling, and from where: API keys, owners, Host and Origin checks, security headers.

A pure ASGI middleware (Guard) answers wrong `Host` values (DNS rebinding) with 400 and
state-changing requests from foreign origins (cross-site forms and fetches) with 403 before any
route runs, and adds the security headers to every response. `principal` is the dependency that
turns `Authorization: Bearer <key>` into the caller every /api/v1 route scopes its work to.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

from linkprobe.settings import Settings
from linkprobe.store import TaskRecord
from linkprobe.store.accounts import KeyStore

log = logging.getLogger("linkprobe.api")

ADMIN = "admin"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The same policy as the front's static files (deploy/front/security-headers.inc): the UI and the
# self-hosted Swagger UI load scripts and styles from this origin only, nothing inline.
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; object-src 'none'; "
     b"base-uri 'none'; frame-ancestors 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]  # fmt: skip

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def auth_required(settings: Settings) -> bool:
    """Keys are required unless switched off, and they cannot be switched off beyond loopback."""
    if settings.auth == "off" and not is_loopback(settings.host):
        raise ValueError(f"LINKPROBE_AUTH=off is only allowed on loopback, not on {settings.host}")
    return settings.auth == "required" or (settings.auth is None and not is_loopback(settings.host))


def allowed_hosts(settings: Settings) -> frozenset[str]:
    return frozenset(settings.allowed_hosts or [settings.host, "localhost", "127.0.0.1", "::1"])


def host_name(value: str) -> str:
    """`example.com:8000` -> `example.com`, `[::1]:8000` -> `::1` (lower case)."""
    return (urlsplit(f"//{value}").hostname or "") if value else ""


@dataclass(slots=True, frozen=True)
class Principal:
    """The caller: `owner` is its key id (None when authentication is off); admin sees every task."""

    owner: str | None
    admin: bool = False

    def sees(self, record: TaskRecord) -> bool:
        return self.admin or self.owner is None or record.owner == self.owner

    @property
    def scope(self) -> str | None:
        """The owner to list tasks of (None: everybody's)."""
        return None if self.admin else self.owner


class Authenticator:
    def __init__(self, settings: Settings, keys: KeyStore) -> None:
        self.required = auth_required(settings)
        self.admin_key = settings.admin_key.get_secret_value() if settings.admin_key else None
        self.keys = keys

    async def __call__(self, request: Request) -> Principal:
        """The FastAPI dependency: 401 without a valid key when keys are required."""
        if not self.required:  # off (loopback only): one user, any Authorization header is ignored
            return Principal(None, admin=True)
        secret = _bearer(request.headers.get("authorization"))
        if secret is None:
            raise HTTPException(401, "an API key is required: Authorization: Bearer <key>",
                                headers={"WWW-Authenticate": "Bearer"})  # fmt: skip
        return await self.identify(secret)

    async def identify(self, secret: str) -> Principal:
        if self.admin_key and hmac.compare_digest(secret.encode(), self.admin_key.encode()):
            return Principal(ADMIN, admin=True)
        key = await self.keys.find(secret)
        if key is None:
            raise HTTPException(401, "unknown or revoked API key", headers={"WWW-Authenticate": "Bearer"})
        return Principal(key.id)

    async def admin(self, request: Request) -> Principal:
        """The dependency of operator-only routes (/metrics): the admin key, or no auth on loopback."""
        who = await self(request)
        if not who.admin:
            raise HTTPException(403, "this endpoint needs the admin key")
        return who


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, secret = header.partition(" ")
    return secret.strip() if scheme.lower() == "bearer" and secret.strip() else None


class Guard:
    """Host and Origin checks and security headers, for every route (the UI and /docs included)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.hosts = allowed_hosts(settings)
        self.origins = frozenset(o.rstrip("/") for o in settings.cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refusal(scope["method"], headers)
        if refusal is not None:
            return await _problem(send, *refusal)

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, secured)

    def refusal(self, method: str, headers: dict[str, str]) -> tuple[int, str] | None:
        host = host_name(headers.get("host", ""))
        if "*" not in self.hosts and host not in self.hosts:
            return 400, f"Host {headers.get('host', '')!r} is not allowed (LINKPROBE_ALLOWED_HOSTS)"
        origin = headers.get("origin")
        if method in UNSAFE_METHODS and origin is not None and not self.origin_allowed(origin):
            return 403, f"cross-origin {method} from {origin!r} refused (LINKPROBE_CORS_ORIGINS)"
        return None

    def origin_allowed(self, origin: str) -> bool:
        """This service's own pages (an allowed host, any port) and the configured CORS origins."""
        if origin.rstrip("/") in self.origins:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and (parts.hostname or "") in self.hosts


async def _problem(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *SECURITY_HEADERS]})
    await send({"type": "http.response.body", "body": body})
