"""The API's options model is derived from the engine's one declaration: same fields, defaults,
bounds and checks, and the same words for a bad value."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import ValidationError

from linkprobe.api.options import ProbeOptionsModel
from linkprobe.engine import OptionError, ProbeOptions

BAD = [
    {"retries": -1},
    {"retries": 11},
    {"timeout": 0},
    {"timeout": 600.5},
    {"connect_timeout": [1]},
    {"retries": 1.5},
    {"verify_tls": None},
    {"method": "PUT"},
    {"accept": "2xx"},
    {"accept": "99-200"},
    {"headers": {"X-A": "a\r\nb"}},
    {"headers": {"bad name": "1"}},
    {"user_agent": "x" * 513},
    {"user_agent": "a\nb"},
    {"max_body_bytes": 1 << 31},
    {"concurrency": 0},
    {"unknown": 1},
]


@pytest.mark.parametrize("values", BAD, ids=lambda v: next(iter(v)))
def test_a_bad_value_is_refused_alike_naming_the_field(values: dict[str, Any]) -> None:
    with pytest.raises(OptionError) as engine:
        ProbeOptions.of(values)
    with pytest.raises(ValidationError) as api:
        ProbeOptionsModel.model_validate(values)
    error = api.value.errors()[0]
    assert (engine.value.name, engine.value.reason) == (
        error["loc"][0],
        error["msg"].removeprefix("Value error, "),
    )


def test_the_same_fields_and_defaults() -> None:
    assert ProbeOptionsModel().model_dump() == dataclasses.asdict(ProbeOptions())
    given = {"method": "HEAD", "timeout": 3, "headers": {"X-A": "1\t2"}, "accept": "200-299,404"}
    assert ProbeOptionsModel.model_validate(given).model_dump() == dataclasses.asdict(ProbeOptions.of(given))
