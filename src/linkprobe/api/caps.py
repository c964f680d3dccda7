"""Operator caps on per-task options: a client may lower what a probe may cost, never raise it."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import HTTPException

from linkprobe.engine import ProbeOptions
from linkprobe.engine.options import number_text, rule_of
from linkprobe.settings import Settings
from linkprobe.store import CrawlSpec

# option name -> the Settings field that caps it (LINKPROBE_<FIELD> in the environment)
CAPPED = {
    "timeout": "cap_timeout",
    "connect_timeout": "cap_connect_timeout",
    "retries": "cap_retries",
    "retry_backoff": "cap_retry_backoff",
    "retry_after_cap": "cap_retry_after",
    "max_redirects": "cap_redirects",
    "max_body_bytes": "cap_body_bytes",
    "concurrency": "cap_concurrency",
}
DEFAULTS = ProbeOptions()
CRAWL_CAPPED = {
    "max_depth": "cap_crawl_depth",
    "max_pages": "cap_crawl_pages",
    "max_page_bytes": "cap_page_bytes",
}


def cap_of(settings: Settings, option: str) -> float:
    value: float | None = getattr(settings, CAPPED[option])
    return settings.concurrency if value is None else value  # concurrency: the engine's by default


def apply_caps(options: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The task's options within the caps: 422 naming the cap for a value above it; a default
    above a cap the operator lowered is stored as the cap."""
    capped = dict(options)
    for option, field in CAPPED.items():
        cap = cap_of(settings, option)
        if option not in options:
            if getattr(DEFAULTS, option) > cap:
                capped[option] = cap
        elif options[option] > cap:
            raise HTTPException(
                422,
                f"options.{option} {options[option]} is above the cap of {number_text(cap)} "
                f"(LINKPROBE_{field.upper()})",
            )
    return capped


def cap_crawl(spec: CrawlSpec, settings: Settings) -> None:
    """A crawl's limits within the caps: 422 naming the cap for a limit above it; a limit left
    out is the cap."""
    for limit, field in CRAWL_CAPPED.items():
        cap: int = getattr(settings, field)
        value: int | None = getattr(spec, limit)
        if value is None:
            setattr(spec, limit, cap)
        elif value > cap:
            raise HTTPException(
                422, f"crawl.{limit} {value} is above the cap of {cap} (LINKPROBE_{field.upper()})"
            )


def option_bounds(settings: Settings) -> dict[str, dict[str, float]]:
    """Each numeric option's bounds for a client's form: the engine's rule (ge/gt, le), the
    operator's cap below it, and the default (stored as the cap when above it)."""
    bounds: dict[str, dict[str, float]] = {}
    for item in dataclasses.fields(ProbeOptions):
        rule = rule_of(item)
        default = getattr(DEFAULTS, item.name)
        if not isinstance(default, int | float) or isinstance(default, bool):
            continue
        limits = {"minimum": rule.ge, "exclusiveMinimum": rule.gt, "maximum": rule.le}
        if item.name in CAPPED:
            cap = cap_of(settings, item.name)
            limits["maximum"] = cap if rule.le is None else min(rule.le, cap)
            default = min(default, cap)
        bounds[item.name] = {k: v for k, v in {**limits, "default": default}.items() if v is not None}
    return bounds


def crawl_bounds(settings: Settings) -> dict[str, dict[str, int]]:
    """A crawl's limits: at least 0 (depth) or 1, at most the caps (also their defaults)."""
    least = {"max_depth": 0, "max_pages": 1, "max_page_bytes": 1}
    return {
        limit: {"minimum": least[limit], "maximum": cap, "default": cap}
        for limit, field in CRAWL_CAPPED.items()
        if (cap := getattr(settings, field)) is not None
    }
