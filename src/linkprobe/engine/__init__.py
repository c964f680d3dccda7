"""The probe engine: a library that knows nothing of HTTP APIs, queues or storage."""

from typing import TYPE_CHECKING, Any

from linkprobe.engine.egress import EgressPolicy
from linkprobe.engine.errors import ConfigError, LinkprobeError, ProbeFailure
from linkprobe.engine.options import EngineConfig, OptionError, ProbeOptions, parse_accept
from linkprobe.engine.outcome import ErrorKind, Hop, ProbeError, ProbeResult, failed

if TYPE_CHECKING:
    from linkprobe.engine.runner import Engine


def __getattr__(name: str) -> Any:
    """Engine on first use: it needs asyncio, which a one-URL check does without."""
    if name == "Engine":
        from linkprobe.engine.runner import Engine

        return Engine
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ConfigError",
    "EgressPolicy",
    "Engine",
    "EngineConfig",
    "ErrorKind",
    "Hop",
    "LinkprobeError",
    "OptionError",
    "ProbeError",
    "ProbeFailure",
    "ProbeOptions",
    "ProbeResult",
    "failed",
    "parse_accept",
]
