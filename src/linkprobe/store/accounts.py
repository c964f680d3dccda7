"""API keys (stored as SHA-256 digests, never the key itself) and per-key usage counters.

Both live in the store in use, so every API replica sees the same keys and counts the same
quota windows: a table in the SQLite file, or keys under `lp:` in Redis.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import json
import secrets
import sqlite3
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from linkprobe.settings import Settings
from linkprobe.store import redis_schema as k
from linkprobe.store.errors import StoreUnavailable

KEY_PREFIX = "lp_"
# The usage counters, also written by the SQLite task store (Store.discover charges crawls).
USAGE_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    key_id TEXT NOT NULL, window TEXT NOT NULL, n INTEGER NOT NULL, expires REAL NOT NULL,
    PRIMARY KEY (key_id, window)
) WITHOUT ROWID;
"""
SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, digest TEXT UNIQUE NOT NULL,
    created_at TEXT NOT NULL, revoked_at TEXT
);
"""


def new_secret() -> str:
    """A key with 256 bits of randomness: hashing it once (no salt, no stretching) is enough."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(slots=True, frozen=True)
class ApiKey:
    id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(slots=True, frozen=True)
class Window:
    """A quota window: `name` tells windows apart (e.g. "day:20261123"), `ends` is when it resets."""

    name: str
    ends: float

    @classmethod
    def current(cls, kind: str, seconds: int) -> Window:
        start = int(time.time()) // seconds * seconds
        return cls(f"{kind}:{start}", start + seconds)

    @classmethod
    def today(cls) -> Window:
        """The UTC day of the `URLs per day` quota (submissions and crawl discoveries count in it)."""
        return cls.current("day", 86400)

    def ttl(self) -> int:
        """Seconds a Redis counter of this window is kept: until the window ends, and a second."""
        return max(1, int(self.ends - time.time()) + 1)


class KeyStore(abc.ABC):
    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def add(self, name: str, secret: str) -> ApiKey: ...

    @abc.abstractmethod
    async def find(self, secret: str) -> ApiKey | None:
        """The active key this secret is, or None (unknown or revoked)."""

    @abc.abstractmethod
    async def all(self) -> list[ApiKey]: ...

    @abc.abstractmethod
    async def revoke(self, key_id: str) -> bool: ...

    @abc.abstractmethod
    async def take(self, key_id: str, window: Window, amount: int, limit: int) -> int | None:
        """Count `amount` in the window unless that passes `limit`: the new count, or None if refused."""

    async def create(self, name: str) -> tuple[ApiKey, str]:
        secret = new_secret()
        return await self.add(name, secret), secret


def _key(row: tuple[Any, ...]) -> ApiKey:
    return ApiKey(row[0], row[1], datetime.fromisoformat(row[2]), row[3] and datetime.fromisoformat(row[3]))


class SQLiteKeys(KeyStore):
    """Its own connection to the store's SQLite file (WAL allows it beside the task store's)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA + USAGE_SCHEMA)

    async def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    async def _run(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self._db is None:
            raise StoreUnavailable("key store is not open")
        async with self._lock:  # one statement at a time on the shared connection; each is tiny
            try:
                return await asyncio.to_thread(lambda: self._db.execute(sql, params).fetchall())  # type: ignore[union-attr]
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(f"SQLite key store failed: {exc}") from exc

    async def add(self, name: str, secret: str) -> ApiKey:
        key = ApiKey(uuid.uuid4().hex[:16], name, datetime.now(UTC))
        await self._run(
            "INSERT INTO api_keys (id, name, digest, created_at) VALUES (?, ?, ?, ?)",
            key.id, name, digest(secret), key.created_at.isoformat(),
        )  # fmt: skip
        return key

    async def find(self, secret: str) -> ApiKey | None:
        rows = await self._run(
            "SELECT id, name, created_at, revoked_at FROM api_keys WHERE digest = ? AND revoked_at IS NULL",
            digest(secret),
        )
        return _key(rows[0]) if rows else None

    async def all(self) -> list[ApiKey]:
        rows = await self._run("SELECT id, name, created_at, revoked_at FROM api_keys ORDER BY created_at")
        return [_key(row) for row in rows]

    async def revoke(self, key_id: str) -> bool:
        rows = await self._run(
            "UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL RETURNING id",
            datetime.now(UTC).isoformat(), key_id,
        )  # fmt: skip
        return bool(rows)

    async def take(self, key_id: str, window: Window, amount: int, limit: int) -> int | None:
        if amount > limit:
            return None
        await self._run("DELETE FROM usage WHERE expires < ?", time.time())
        rows = await self._run(
            "INSERT INTO usage (key_id, window, n, expires) VALUES (?1, ?2, ?3, ?4)"
            " ON CONFLICT (key_id, window) DO UPDATE SET n = n + ?3 WHERE n + ?3 <= ?5 RETURNING n",
            key_id, window.name, amount, window.ends, limit,
        )  # fmt: skip
        if not rows or rows[0][0] > limit:
            return None
        return int(rows[0][0])


class RedisKeys(KeyStore):
    def __init__(self, url: str) -> None:
        self.url = url
        self._redis: Any = None
        self._take: Any = None

    @property
    def r(self) -> Any:
        if self._redis is None:
            raise StoreUnavailable("key store is not open")
        return self._redis

    async def open(self) -> None:
        self._redis = aioredis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)
        self._take = self._redis.register_script(k.TAKE_USAGE)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    async def add(self, name: str, secret: str) -> ApiKey:
        key = ApiKey(uuid.uuid4().hex[:16], name, datetime.now(UTC))
        fields = {"name": name, "digest": digest(secret), "created_at": key.created_at.isoformat()}
        try:
            async with self.r.pipeline(transaction=True) as pipe:
                pipe.hset(k.API_KEYS, key.id, json.dumps(fields))
                pipe.set(k.api_key_digest(fields["digest"]), key.id)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis key store failed: {exc}") from exc
        return key

    async def _get(self, key_id: str) -> ApiKey | None:
        raw = await self.r.hget(k.API_KEYS, key_id)
        return None if raw is None else self._decode(key_id, raw)

    @staticmethod
    def _decode(key_id: str, raw: str) -> ApiKey:
        data = json.loads(raw)
        revoked = data.get("revoked_at")
        return ApiKey(key_id, data["name"], datetime.fromisoformat(data["created_at"]),
                      revoked and datetime.fromisoformat(revoked))  # fmt: skip

    async def find(self, secret: str) -> ApiKey | None:
        try:
            key_id = await self.r.get(k.api_key_digest(digest(secret)))
            key = None if key_id is None else await self._get(key_id)
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis key store failed: {exc}") from exc
        return key if key is not None and key.revoked_at is None else None

    async def all(self) -> list[ApiKey]:
        rows = await self.r.hgetall(k.API_KEYS)
        return sorted((self._decode(i, raw) for i, raw in rows.items()), key=lambda key: key.created_at)

    async def revoke(self, key_id: str) -> bool:
        raw = await self.r.hget(k.API_KEYS, key_id)
        if raw is None or json.loads(raw).get("revoked_at"):
            return False
        data = {**json.loads(raw), "revoked_at": datetime.now(UTC).isoformat()}
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(k.API_KEYS, key_id, json.dumps(data))
            pipe.delete(k.api_key_digest(data["digest"]))
            await pipe.execute()
        return True

    async def take(self, key_id: str, window: Window, amount: int, limit: int) -> int | None:
        try:
            args = [amount, limit, window.ttl()]
            count = int(await self._take(keys=[k.usage(key_id, window.name)], args=args))
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"Redis key store failed: {exc}") from exc
        return count if count >= 0 else None


def open_keys(settings: Settings) -> KeyStore:
    """The key store beside the task store the settings select."""
    return RedisKeys(settings.redis_url) if settings.redis_url else SQLiteKeys(settings.db)
