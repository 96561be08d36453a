"""The OpenAPI document describes exactly the routes the server has, and is what it serves."""

from __future__ import annotations

import re
from pathlib import Path

import aiohttp
import pytest

from postline.audit.api import ApiServer
from postline.audit.openapi import document
from postline.audit.params import PARAMETERS
from postline.audit.settings import AuditSettings
from postline.values import HostPort
from tests.integration.audit.test_api_journeys import serving
from tests.unit.audit.test_api_fake import FakeIndex

pytestmark = pytest.mark.integration

METHODS = {"get", "post", "put", "patch", "delete", "head", "options", "trace"}


def app_routes(tmp_path: Path) -> set[tuple[str, str]]:
    settings = AuditSettings(trail_dir=tmp_path, api_listen=HostPort("127.0.0.1", 1))
    app = ApiServer(settings, FakeIndex()).application()
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    }


def documented_routes() -> set[tuple[str, str]]:
    return {
        (method, path)
        for path, operations in document()["paths"].items()
        for method in operations
        if method in METHODS
    }


def test_every_route_of_the_app_is_documented_and_every_documented_route_exists(tmp_path):
    routes = app_routes(tmp_path)
    assert routes == documented_routes()
    assert {("get", "/v1/messages"), ("get", "/v1/messages/{id}"), ("get", "/v1/openapi.json"),
            ("get", "/")} <= routes  # fmt: skip


def test_path_parameters_and_search_parameters_match_what_the_server_reads():
    for path, operations in document()["paths"].items():
        in_path = set(re.findall(r"{(\w+)}", path))
        for operation in operations.values():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == in_path, path
    search = document()["paths"]["/v1/messages"]["get"]["parameters"]
    assert [p["name"] for p in search] == list(PARAMETERS)


def test_the_document_is_openapi_3_1_and_its_references_resolve():
    spec = document()
    assert spec["openapi"].startswith("3.1.")
    schemas = spec["components"]["schemas"]
    text = repr(spec)
    for name in re.findall(r"#/components/schemas/(\w+)", text):
        assert name in schemas, name
    message = schemas["Message"]["properties"]
    for key in ("message_id", "state", "partly_delivered", "mail_from", "received_at",
                "subject", "header_message_id", "submission", "recipients", "events",
                "diagnosis"):  # fmt: skip
        assert key in message, key


async def test_the_server_serves_the_document_at_v1_openapi_json(tmp_path):
    async with (
        serving(tmp_path, []) as served,
        aiohttp.ClientSession() as http,
        http.get(served.base + "/v1/openapi.json") as response,
    ):
        assert response.status == 200
        assert await response.json() == document()
