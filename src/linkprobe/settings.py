"""All settings, from LINKPROBE_* environment variables. Built once in the CLI, passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from linkprobe.engine import EngineConfig
from linkprobe.engine.limits import cpus


def default_db_path() -> Path:
    return Path.home() / ".local" / "share" / "linkprobe" / "linkprobe.db"


MIN_ADMIN_KEY = 32
SECRET_SETTINGS = frozenset({"admin_key"})  # never echoed in an error


def _split(value: object) -> object:
    return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value


# How an operator allows a blocked destination for the service (the CLI's flags are --allow-private
# and --allow-cidr): the settings below, named as the environment sets them.
EGRESS_HINT = (
    "to allow them, start the service with --allow-private or LINKPROBE_ALLOW_PRIVATE=true, "
    "or allow one network with LINKPROBE_ALLOW_CIDRS=<cidr>"
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LINKPROBE_", extra="ignore")

    # engine
    concurrency: int = Field(
        256,
        ge=1,
        le=10000,
        description="Requests in flight at once, all hosts (connections kept open: twice this).",
    )
    per_host: int = Field(8, ge=1, le=1000, description="Requests in flight at once to one host.")
    allow_private: bool = Field(False, description="Allow loopback/private/link-local destinations.")
    allow_cidrs: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated CIDRs."
    )

    # service
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    db: Path = Field(default_factory=default_db_path, description="SQLite file of the embedded store.")
    redis_url: str | None = Field(None, description="Use Redis (distributed mode) instead of SQLite.")
    reclaim_idle_s: float = Field(30.0, gt=0, description="A chunk idle this long belongs to a dead worker.")
    max_deliveries: int = Field(5, ge=1, description="Deliveries of one chunk before it is dead-lettered.")
    retention_s: int = Field(7 * 86400, ge=60, description="How long Redis keeps tasks and results.")
    workers: int = Field(4, ge=1, le=256, description="Chunks processed at once by one process.")
    worker_processes: int = Field(
        default_factory=cpus, ge=0, le=64,
        description="linkprobe serve: probing processes beside the API's (default one per CPU; 0: the "
        "API's own process probes, on its event loop).",
    )  # fmt: skip
    chunk_size: int = Field(500, ge=1, le=100_000, description="URLs per work chunk.")
    max_urls_per_task: int = Field(1_000_000, ge=1)
    max_request_bytes: int = Field(256 << 20, ge=1024, description="Largest accepted request body.")
    max_upload_files: int = Field(100, ge=1, le=10000, description="File parts in one multipart upload.")
    max_document_bytes: int = Field(
        64 << 20, ge=1024, description="Bytes of the documents (not URL lists) of one upload, together."
    )
    sse_keepalive_s: float = Field(15.0, gt=0, le=15, description="Longest silence on an event stream.")

    # caps on the options of one task (api/caps.py): a request above one is refused with 422
    cap_timeout: float = Field(60.0, gt=0, le=600, description="Largest options.timeout, seconds.")
    cap_connect_timeout: float = Field(30.0, gt=0, le=600, description="Largest options.connect_timeout.")
    cap_retries: int = Field(5, ge=0, le=10, description="Largest options.retries.")
    cap_retry_backoff: float = Field(2.0, ge=0, le=60, description="Largest options.retry_backoff.")
    cap_retry_after: float = Field(30.0, ge=0, le=600, description="Largest options.retry_after_cap.")
    cap_redirects: int = Field(20, ge=0, le=50, description="Largest options.max_redirects.")
    cap_body_bytes: int = Field(16 << 20, ge=0, le=1 << 30, description="Largest options.max_body_bytes.")
    cap_concurrency: int | None = Field(
        None, ge=1, le=10000, description="Largest options.concurrency; the engine's concurrency if unset."
    )
    cap_crawl_depth: int = Field(
        50, ge=0, le=10_000, description="Largest crawl.max_depth (and the default)."
    )
    cap_crawl_pages: int = Field(100_000, ge=1, description="Largest crawl.max_pages (and the default).")
    cap_page_bytes: int = Field(
        16 << 20, ge=1, le=1 << 30, description="Largest crawl.max_page_bytes (and the default)."
    )

    # security (README "Keys, quotas and security settings")
    auth: Literal["required", "off"] | None = Field(
        None, description="API keys: required, or off (loopback only). Default: off on loopback only."
    )
    admin_key: SecretStr | None = Field(None, description="A key that sees and manages every task.")
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Host header values accepted (default: bind address, localhost)."
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Origins allowed cross-origin (CORS off when empty)."
    )
    quota_tasks_in_flight: int = Field(20, ge=1, description="Pending or running tasks of one key.")
    quota_urls_per_day: int = Field(1_000_000, ge=1, description="URLs one key submits per UTC day.")
    quota_submissions_per_minute: int = Field(60, ge=1, description="Task submissions of one key per minute.")
    max_concurrent_uploads: int = Field(8, ge=1, description="Request bodies read at once.")
    upload_wait_s: float = Field(10.0, ge=0, le=600, description="Wait for an upload slot, then 503.")
    max_connections: int = Field(1000, ge=1, description="Open connections at once; 503 beyond.")
    keepalive_s: int = Field(5, ge=1, le=300, description="Idle keep-alive connections close after this.")
    header_timeout_s: float = Field(10.0, gt=0, le=300, description="Time to send a request's headers.")
    body_timeout_s: float = Field(30.0, gt=0, le=3600, description="Longest wait for the next body bytes.")

    def egress_policy(self) -> str:
        """The egress policy in force, in one sentence for the start-up log and the API."""
        if self.allow_private:
            return "private destinations are allowed (LINKPROBE_ALLOW_PRIVATE is on)"
        allowed = f"; allowed despite it: {', '.join(self.allow_cidrs)}" if self.allow_cidrs else ""
        return f"loopback, private and link-local destinations are blocked{allowed}; {EGRESS_HINT}"

    def engine_config(self) -> EngineConfig:
        """The engine's settings; the CLI puts its flags over them (cli/check.py engine_config)."""
        return EngineConfig.of({
            "concurrency": self.concurrency,
            "per_host": self.per_host,
            "allow_private": self.allow_private,
            "allow_cidrs": tuple(self.allow_cidrs),
        })  # fmt: skip

    @field_validator("allow_cidrs", "allowed_hosts", "cors_origins", mode="before")
    @classmethod
    def _split_cidrs(cls, value: object) -> object:
        return _split(value)

    @field_validator("admin_key")
    @classmethod
    def _strong_admin_key(cls, value: SecretStr | None) -> SecretStr | None:
        """The admin key sees everything: too short to guess by trying it is refused."""
        if value is not None and len(value.get_secret_value()) < MIN_ADMIN_KEY:
            raise ValueError(f"the admin key must have at least {MIN_ADMIN_KEY} characters (random ones)")
        return value
