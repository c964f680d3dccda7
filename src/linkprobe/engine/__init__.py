"""The probe engine: a library that knows nothing of HTTP APIs, queues or storage."""

from linkprobe.engine.egress import EgressPolicy
from linkprobe.engine.errors import ConfigError, LinkprobeError, ProbeFailure, StoreError, StoreUnavailable
from linkprobe.engine.options import EngineConfig, OptionError, ProbeOptions, parse_accept
from linkprobe.engine.outcome import ErrorKind, Hop, ProbeError, ProbeResult, failed
from linkprobe.engine.runner import Engine

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
    "StoreError",
    "StoreUnavailable",
    "failed",
    "parse_accept",
]
