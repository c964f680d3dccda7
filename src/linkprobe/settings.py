"""All settings, from LINKPROBE_* environment variables. Built once in the CLI, passed down."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from linkprobe.engine import EngineConfig, ProbeOptions
from linkprobe.engine.limits import cpus
from linkprobe.engine.options import Rule, rule_of


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


def _declared(source: type[Any], name: str) -> tuple[dataclasses.Field[Any], Rule]:
    found = next(item for item in dataclasses.fields(source) if item.name == name)
    return found, rule_of(found)


def engine_setting(name: str, note: str = "") -> Any:
    """A setting of the engine: its default, bounds and description are EngineConfig's own
    (engine/options.py), so `linkprobe check` without settings and the service agree."""
    item, rule = _declared(EngineConfig, name)
    default: dict[str, Any] = {"default": item.default}
    if isinstance(item.default, tuple):  # a sequence: the setting's list (from a comma-separated value)
        default = {"default_factory": list}
    return Field(**default, **rule.bounds(), description=f"{rule.doc}{note}")


CAP_OF = "caps"  # a cap setting's json_schema_extra key: the option it caps (api/caps.py reads it)


def cap_setting(option: str, default: float | None, note: str = "") -> Any:
    """The operator's cap on one option of a task (LINKPROBE_CAP_*): its bounds are the option's
    own (engine/options.py ProbeOptions); api/caps.py finds the caps by this marker."""
    _, rule = _declared(ProbeOptions, option)
    return Field(
        default, **rule.bounds(), description=f"Largest options.{option}{note}.",
        json_schema_extra={CAP_OF: option},
    )  # fmt: skip


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LINKPROBE_", extra="ignore")

    # engine: EngineConfig's fields (engine_config() builds it from these)
    concurrency: int = engine_setting("concurrency")
    per_host: int = engine_setting("per_host")
    allow_private: bool = engine_setting("allow_private")
    allow_cidrs: Annotated[list[str], NoDecode] = engine_setting("allow_cidrs", " Comma-separated.")

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
    cap_timeout: float = cap_setting("timeout", 60.0)
    cap_connect_timeout: float = cap_setting("connect_timeout", 30.0)
    cap_retries: int = cap_setting("retries", 5)
    cap_retry_backoff: float = cap_setting("retry_backoff", 2.0)
    cap_retry_after: float = cap_setting("retry_after_cap", 30.0)
    cap_redirects: int = cap_setting("max_redirects", 20)
    cap_body_bytes: int = cap_setting("max_body_bytes", 16 << 20)
    cap_concurrency: int | None = cap_setting("concurrency", None, "; the engine's concurrency if unset")
    cap_crawl_depth: int = Field(
        50, ge=0, le=10_000, description="Largest crawl.max_depth (and the default)."
    )
    cap_crawl_pages: int = Field(100_000, ge=1, description="Largest crawl.max_pages (and the default).")
    cap_page_bytes: int = Field(
        16 << 20, ge=1, le=1 << 30, description="Largest crawl.max_page_bytes (and the default)."
    )

    public_url: str | None = Field(
        None, pattern=r"^https?://[^\s/?#]+[^\s?#]*$",
        description="The address users reach the service at (e.g. https://linkprobe.example): webhook "
        "payloads link to the task there (without it, their links are paths).",
    )  # fmt: skip

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
        fields = dataclasses.fields(EngineConfig)
        return EngineConfig.of({item.name: getattr(self, item.name) for item in fields})

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
