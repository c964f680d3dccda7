"""The API's probe options: a pydantic model derived from the engine's one declaration.

The engine's ProbeOptions is a plain dataclass (so `linkprobe check` never imports pydantic);
its fields' types, defaults and Rules (description, bounds, check) become this model's fields,
constraints and validators, and so the OpenAPI schema and the 422 details naming the field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator
from pydantic.json_schema import SkipJsonSchema

from linkprobe.engine import ProbeOptions
from linkprobe.engine.options import default_of, rule_of


def _field(item: dataclasses.Field[Any], note: str | None = None) -> Any:
    found = rule_of(item)
    doc = found.doc if note is None else f"{found.doc} {note}"
    default = default_of(item)
    if default is dataclasses.MISSING:  # a field without a default is required
        return Field(description=doc, **found.bounds())
    # A value, not the factory: the schema shows it (pydantic copies a mutable default per model).
    return Field(default, description=doc, **found.bounds())


def _validator(name: str, check: Callable[[Any], None]) -> Any:
    def validate(cls: type[BaseModel], value: Any) -> Any:
        check(value)
        return value

    return field_validator(name)(validate)


def model_of(
    source: type[Any], name: str | None = None, only: Collection[str] | None = None,
    notes: Mapping[str, str] | None = None,
) -> type[BaseModel]:  # fmt: skip
    """A frozen pydantic model refusing unknown fields, with `source`'s name (or `name`), fields
    (or `only` these) and checks; `notes` add to a field's description."""
    hints = get_type_hints(source)
    items = [item for item in dataclasses.fields(source) if only is None or item.name in only]
    fields = {item.name: (hints[item.name], _field(item, (notes or {}).get(item.name))) for item in items}
    validators = {
        f"check_{item.name}": _validator(item.name, check)
        for item in items
        if (check := rule_of(item).check) is not None
    }
    model: type[BaseModel] = create_model(  # type: ignore[call-overload]
        name or source.__name__,
        __config__=ConfigDict(frozen=True, extra="forbid"),
        __doc__=source.__doc__,
        __validators__=validators,
        **fields,
    )
    return model


UNSET: Any = SkipJsonSchema[None]  # type: ignore[misc]  # None, left out of the schema


def _unset(value: object) -> bool:
    return value is None


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def _shown_field(item: dataclasses.Field[Any]) -> Any:
    """Left out when unset, and said so in the schema: optional, never null."""
    return Field(None, description=rule_of(item).doc, exclude_if=_unset, json_schema_extra=_no_default)


def shown_model_of(source: type[Any]) -> type[BaseModel]:
    """The options as a task shows them: `source`'s fields, each present only when the task's
    value differs from the default (ProbeOptions.changed), so a client tells what was asked for."""
    hints = get_type_hints(source)
    fields = {
        item.name: (hints[item.name] | UNSET, _shown_field(item)) for item in dataclasses.fields(source)
    }
    doc = f"{source.__name__} that differ from their defaults (header values redacted)."
    model: type[BaseModel] = create_model(f"{source.__name__}Shown", __doc__=doc, **fields)  # type: ignore[call-overload]
    return model


if TYPE_CHECKING:  # what the models are to the type checker; their fields are ProbeOptions'

    class ProbeOptionsModel(BaseModel): ...

    class ProbeOptionsShown(BaseModel): ...

else:
    ProbeOptionsModel = model_of(ProbeOptions)
    ProbeOptionsShown = shown_model_of(ProbeOptions)


def options_of(model: BaseModel) -> ProbeOptions:
    """The engine's options from a validated ProbeOptionsModel: the typed object a task carries
    from here to the store and the probe."""
    return ProbeOptions.of(model.model_dump(exclude_defaults=True))
