"""Operator caps on per-task options: a client may lower what a probe may cost, never raise it."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import HTTPException

from linkprobe.engine import ProbeOptions
from linkprobe.engine.options import number_text, rule_of
from linkprobe.settings import CAP_OF, Settings
from linkprobe.store import CrawlSpec


def _capped() -> dict[str, str]:
    """Option name -> the Settings field that caps it (LINKPROBE_<FIELD> in the environment), as
    the settings declare them (settings.cap_setting)."""
    capped: dict[str, str] = {}
    for name, info in Settings.model_fields.items():
        if isinstance(extra := info.json_schema_extra, dict) and isinstance(option := extra.get(CAP_OF), str):
            capped[option] = name
    return capped


CAPPED = _capped()
DEFAULTS = ProbeOptions()
CRAWL_CAPPED = {
    "max_depth": "cap_crawl_depth",
    "max_pages": "cap_crawl_pages",
    "max_page_bytes": "cap_page_bytes",
}


def cap_of(settings: Settings, option: str) -> float:
    value: float | None = getattr(settings, CAPPED[option])
    return settings.concurrency if value is None else value  # concurrency: the engine's by default


def apply_caps(options: ProbeOptions, settings: Settings) -> ProbeOptions:
    """The task's options within the caps: 422 naming the cap for a value above it; a default
    above a cap the operator lowered is stored as the cap."""
    lowered: dict[str, Any] = {}
    for option, field in CAPPED.items():
        cap, value = cap_of(settings, option), getattr(options, option)
        if value <= cap:
            continue
        if value != getattr(DEFAULTS, option):  # given by the client
            raise HTTPException(
                422,
                f"options.{option} {value} is above the cap of {number_text(cap)} "
                f"(LINKPROBE_{field.upper()})",
            )
        lowered[option] = cap
    return dataclasses.replace(options, **lowered) if lowered else options


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
    """A crawl's limits: at least what CrawlSpec's rules say, at most the caps (also their defaults)."""
    least = {item.name: int(rule_of(item).ge or 0) for item in dataclasses.fields(CrawlSpec)}
    return {
        limit: {"minimum": least[limit], "maximum": cap, "default": cap}
        for limit, field in CRAWL_CAPPED.items()
        if (cap := getattr(settings, field)) is not None
    }
