"""Configuration as text: the reference tables of docs/configuration.md and the effective config.

``reference_markdown`` renders one table per section from the settings models
(key, default, description), so the documentation is derived from the same
``Field`` definitions that validate the file. ``effective_toml`` renders a
loaded ``Settings`` as TOML with secrets masked, for ``postline config check``.
"""

from __future__ import annotations

import json
import re
import typing
from typing import Any

import tomli_w
from pydantic import BaseModel, BeforeValidator, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from postline.app.settings import Settings
from postline.values import format_duration, parse_duration

_SECRET_KEYS = re.compile(r"password|secret|token", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")


def _default_text(name: str, field: FieldInfo, model: type[BaseModel]) -> str:
    if name in {"hostname", "helo_name"}:
        return "the machine's FQDN" if field.default_factory is not None else "[relay] hostname"
    if field.default_factory is not None:
        value = model.model_validate({}).model_dump(mode="json")[name]
    else:
        value = model.model_construct().model_dump(mode="json", include={name}).get(name)
    if value is None:
        return "(none)"
    if _is_duration(field) and isinstance(value, int | float):
        return f'"{format_duration(value)}"'
    return json.dumps(value).replace("|", "\\|")


def _is_duration(field: FieldInfo) -> bool:
    return any(
        isinstance(meta, BeforeValidator) and meta.func is parse_duration for meta in field.metadata
    )


def _table_model(annotation: object) -> tuple[type[BaseModel], bool] | None:
    """The settings table a field holds (``extra="forbid"`` models), and whether it is a list."""
    many = typing.get_origin(annotation) is list
    inner = typing.get_args(annotation)[0] if many else annotation
    if (
        isinstance(inner, type)
        and issubclass(inner, BaseModel)
        and inner.model_config.get("extra") == "forbid"
    ):
        return inner, many
    return None


def _default_of(name: str, info: FieldInfo, model: type[BaseModel]) -> str:
    """``_default_text``, for the tables whose rows have required keys too."""
    if info.is_required():
        return "(required)"
    try:
        return _default_text(name, info, model)
    except ValidationError:  # a list item's model cannot be built from nothing
        annotation: Any = info.annotation
        value = TypeAdapter(annotation).dump_python(
            info.get_default(call_default_factory=True), mode="json"
        )
        return json.dumps(value).replace("|", "\\|")


def _table(title: str, model: type[BaseModel], parts: list[str]) -> None:
    parts.append(f"### {title}\n")
    if model.__doc__:
        parts.append(model.__doc__.strip().splitlines()[0] + "\n")
    parts.append("| key | default | meaning |\n| --- | --- | --- |")
    nested: list[tuple[str, type[BaseModel]]] = []
    for name, info in model.model_fields.items():
        table = _table_model(info.annotation)
        if table is not None:
            sub, many = table
            name_in = f"{title.strip('[]')}.{name}"
            nested.append((f"[[{name_in}]]" if many else f"[{name_in}]", sub))
            if not many:
                continue
        default = _default_of(name, info, model)
        meaning = (info.description or "").replace("|", "\\|")
        parts.append(f"| `{name}` | `{default}` | {meaning} |")
    parts.append("")
    for title_of, sub in nested:
        _table(title_of, sub, parts)


def reference_markdown() -> str:
    """Markdown tables of every section and key, in declaration order; nested tables
    ([filter.dkim], [[filter.dkim.keys]]) follow their section."""
    parts: list[str] = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, BaseModel)
        _table(f"[{section}]", model, parts)
    return "\n".join(parts)


def _mask(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _mask(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, key) for v in value]
    if isinstance(value, str):
        if _SECRET_KEYS.search(key) and value:
            return "********"
        return _URL_PASSWORD.sub(r"\1********@", value)
    return value


def effective_toml(settings: Settings) -> str:
    """The loaded configuration as TOML, passwords masked, ``None`` values left out."""
    data = settings.model_dump(mode="json", exclude_none=True)
    return tomli_w.dumps(_mask(data))
