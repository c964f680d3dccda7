"""The API's options model is derived from the engine's one declaration: same fields, defaults,
bounds and checks, and the same words for a bad value."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from pydantic import ValidationError

from linkprobe.api import create_app
from linkprobe.api.options import ProbeOptionsModel
from linkprobe.engine import OptionError, ProbeOptions
from linkprobe.engine.options import REDACTED, rule_of
from linkprobe.settings import Settings
from linkprobe.store.base import split_secrets, stored_options, with_secrets
from linkprobe.store.sqlite import SQLiteStore

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


def declared_schema(item: dataclasses.Field[Any]) -> dict[str, Any]:
    """What the OpenAPI schema must say of one option: the declaration's description, default
    and bounds, under JSON Schema's names."""
    found = rule_of(item)
    default = item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default
    words = {
        "minimum": found.ge,
        "exclusiveMinimum": found.gt,
        "maximum": found.le,
        "maxLength": found.max_length,
    }
    return {"description": found.doc, "default": default} | {k: v for k, v in words.items() if v is not None}


@pytest.mark.parametrize("item", dataclasses.fields(ProbeOptions), ids=lambda item: item.name)
def test_the_openapi_schema_shows_each_options_declared_default_and_bounds(
    item: dataclasses.Field[Any],
) -> None:
    app = create_app(Settings(), SQLiteStore(":memory:"))
    schema = app.openapi()["components"]["schemas"]["ProbeOptions"]["properties"][item.name]
    expected = declared_schema(item)
    assert {key: schema.get(key) for key in expected} == expected


def test_stored_options_read_back_as_the_same_object_their_secrets_apart() -> None:
    given = ProbeOptions(timeout=3, headers={"Authorization": "Bearer x", "X-Trace": "1"}, method="HEAD")
    stored, secrets = split_secrets(given)
    assert json.loads(stored) == {
        "timeout": 3.0, "method": "HEAD", "headers": {"Authorization": REDACTED, "X-Trace": REDACTED}
    }  # fmt: skip
    assert "Bearer x" not in stored and secrets is not None
    assert with_secrets(stored, secrets) == given  # what a worker gets
    assert stored_options(stored) == given.redacted()  # what a task shows
    assert stored_options(ProbeOptions().to_json()) == ProbeOptions() and ProbeOptions().to_json() == "{}"


def test_a_tasks_options_are_typed_in_the_schema_by_the_same_declaration() -> None:
    schemas = create_app(Settings(), SQLiteStore(":memory:")).openapi()["components"]["schemas"]
    assert schemas["Task"]["properties"]["options"]["$ref"] == "#/components/schemas/ProbeOptionsShown"
    shown, asked = schemas["ProbeOptionsShown"], schemas["ProbeOptions"]
    assert list(shown["properties"]) == [item.name for item in dataclasses.fields(ProbeOptions)]
    assert "required" not in shown  # only what differs from the defaults is shown
    for name, field in shown["properties"].items():
        assert "default" not in field and "anyOf" not in field, name  # left out, never null
        declared = {
            k: v for k, v in asked["properties"][name].items() if k in ("type", "enum", "description")
        }
        assert {k: field.get(k) for k in declared} == declared, name
