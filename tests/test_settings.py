"""The settings' engine fields and caps are derived from the engine's one declaration of the
options (engine/options.py): the same defaults, bounds and descriptions, so the service, the
CLI and the API cannot disagree on them."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from annotated_types import Ge, Gt, Le
from fastapi import HTTPException
from pydantic.fields import FieldInfo

from linkprobe.api.caps import CAPPED, apply_caps
from linkprobe.engine import EngineConfig, ProbeOptions
from linkprobe.engine.options import rule_of
from linkprobe.settings import Settings


def bounds_of(info: FieldInfo) -> dict[str, float]:
    words = {Ge: "ge", Gt: "gt", Le: "le"}
    found: dict[str, float] = {}
    for item in info.metadata:
        for kind, word in words.items():
            if isinstance(item, kind):
                found[word] = getattr(item, word)
    return found


def declared_bounds(item: dataclasses.Field[Any]) -> dict[str, float]:
    found = rule_of(item)
    return {
        word: bound
        for word, bound in (("ge", found.ge), ("gt", found.gt), ("le", found.le))
        if bound is not None
    }


@pytest.mark.parametrize("item", dataclasses.fields(EngineConfig), ids=lambda item: item.name)
def test_each_engine_setting_is_the_engine_configs_field(item: dataclasses.Field[Any]) -> None:
    info = Settings.model_fields[item.name]
    default = info.get_default(call_default_factory=True)
    assert (tuple(default) if isinstance(default, list) else default) == item.default
    assert bounds_of(info) == declared_bounds(item)
    assert info.description is not None and info.description.startswith(str(rule_of(item).doc))
    assert Settings().engine_config() == EngineConfig()


def test_every_capped_option_has_one_cap_setting_with_the_options_bounds() -> None:
    assert set(CAPPED) == {
        "timeout", "connect_timeout", "retries", "retry_backoff", "retry_after_cap", "max_redirects",
        "max_body_bytes", "concurrency",
    }  # fmt: skip
    for item in dataclasses.fields(ProbeOptions):
        if item.name in CAPPED:
            assert bounds_of(Settings.model_fields[CAPPED[item.name]]) == declared_bounds(item), item.name


def test_a_cap_above_the_options_own_bound_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINKPROBE_CAP_TIMEOUT", "601")  # ProbeOptions.timeout: at most 600
    with pytest.raises(ValueError, match="less than or equal to 600"):
        Settings()


def test_a_default_above_a_lowered_cap_is_lowered_and_a_given_value_is_refused() -> None:
    settings = Settings(cap_timeout=5, cap_retries=1)
    assert apply_caps(ProbeOptions(), settings) == ProbeOptions(timeout=5, retries=1)
    assert apply_caps(ProbeOptions(timeout=4), settings) == ProbeOptions(timeout=4, retries=1)
    with pytest.raises(HTTPException) as refused:
        apply_caps(ProbeOptions(timeout=6), settings)
    assert (refused.value.status_code, refused.value.detail) == (
        422, "options.timeout 6.0 is above the cap of 5 (LINKPROBE_CAP_TIMEOUT)"
    )  # fmt: skip
