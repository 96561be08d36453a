"""Small builders of OpenAPI 3.1 fragments shared by ``openapi`` and ``queuedoc``."""

from __future__ import annotations

from typing import Any

REF = "#/components/schemas/{model}"


def ref(model: str) -> dict[str, Any]:
    """A reference to ``components/schemas/<model>``."""
    return {"$ref": REF.format(model=model)}


def json_response(description: str, model: str) -> dict[str, Any]:
    """A response whose JSON body is ``model``."""
    return {"description": description, "content": {"application/json": {"schema": ref(model)}}}


def object_schema(properties: dict[str, Any], description: str = "") -> dict[str, Any]:
    """An object schema in which every property is required."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
    }
    if description:
        schema["description"] = description
    return schema
