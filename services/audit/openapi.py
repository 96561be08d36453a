"""The OpenAPI 3.1 document of the audit listener: exactly the routes ``ApiServer`` serves.

``document()`` describes the query API (``/v1/messages``, ``/v1/messages/{id}``,
``/v1/openapi.json``), the queue actions (``/v1/queue/{action}``,
``/v1/queue/requests/{request_id}``) and the console's pages (``/``, ``/messages/{id}``,
``/login``, ``/logout``), every one of them and nothing else (a test compares
it with the application's router both ways). The event schema is generated
from ``postline.models.Event``, so it cannot drift from what the events are.
"""

from __future__ import annotations

from typing import Any

from postline.audit.oaschema import REF, json_response, object_schema, ref
from postline.audit.params import DEFAULT_LIMIT, MAX_LIMIT
from postline.audit.queuedoc import queue_paths, queue_schemas
from postline.audit.views import STATES
from postline.models import Event

_NULLABLE_STRING = {"type": ["string", "null"]}
_TIME = {"type": ["string", "null"], "format": "date-time"}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Postline audit API",
            "version": "1",
            "description": "Where is a message, and why: the audit index of every message "
            "and recipient. With [audit] api_tokens_file set, every route but POST /login "
            "needs 'Authorization: Bearer <token>' (or the console's session cookie); "
            "without it the listener serves on a loopback address only.",
        },
        "security": [{"bearer": []}, {"session": []}, {}],
        "paths": _paths(),
        "components": {"schemas": _schemas(), "securitySchemes": _security_schemes()},
    }


def _paths() -> dict[str, Any]:
    return {
        "/v1/messages": {
            "get": {
                "operationId": "searchMessages",
                "summary": "Messages matching a search, newest first, paginated",
                "parameters": _search_parameters(),
                "responses": {
                    "200": json_response("One page of messages", "MessagePage"),
                    "400": json_response("A parameter cannot be used", "Error"),
                    "401": json_response("No valid token", "Error"),
                },
            }
        },
        "/v1/messages/{id}": {
            "get": {
                "operationId": "getMessage",
                "summary": "One message by its Postline id",
                "parameters": [_id_parameter()],
                "responses": {
                    "200": json_response("The message, as a list of one", "MessageList"),
                    "401": json_response("No valid token", "Error"),
                    "404": json_response("No such message", "Error"),
                },
            }
        },
        "/v1/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "responses": {
                    "200": {
                        "description": "The OpenAPI document",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "401": json_response("No valid token", "Error"),
                },
            }
        },
        **queue_paths(),
        **_console_paths(),
    }


def _console_paths() -> dict[str, Any]:
    login_form = _html("The login form (tokens are configured and no session is open)")
    return {
        "/": {
            "get": {
                "operationId": "consoleSearch",
                "summary": "Console: the search box and the results table",
                "tags": ["console"],
                "parameters": _search_parameters(),
                "responses": {
                    "200": _html("The search page"),
                    "400": _html("The search page with what is wrong"),
                    "401": login_form,
                },
            }
        },
        "/messages/{id}": {
            "get": {
                "operationId": "consoleMessage",
                "summary": "Console: one message's four steps, diagnosis first",
                "tags": ["console"],
                "parameters": [_id_parameter()],
                "responses": {
                    "200": _html("The message's timeline"),
                    "401": login_form,
                    "404": _html("No such message"),
                },
            }
        },
        "/login": {
            "post": {
                "operationId": "consoleLogin",
                "summary": "Console: open a session with a token",
                "tags": ["console"],
                "security": [],
                "requestBody": _form({"token": "An API token", "next": "Page to go to"}),
                "responses": {
                    "303": {"description": "Logged in: the session cookie is set"},
                    "401": _html("Wrong token: the login form again"),
                    "403": _html("The login form's CSRF check failed"),
                },
            }
        },
        "/logout": {
            "post": {
                "operationId": "consoleLogout",
                "summary": "Console: close the session",
                "tags": ["console"],
                "requestBody": _form({}),
                "responses": {
                    "303": {"description": "Logged out: back to the login form"},
                    "401": login_form,
                    "403": _html("The form's CSRF check failed"),
                },
            }
        },
    }


def _search_parameters() -> list[dict[str, Any]]:
    def query(name: str, description: str, **schema: Any) -> dict[str, Any]:
        return {
            "name": name,
            "in": "query",
            "required": False,
            "description": description,
            "schema": schema or {"type": "string"},
        }

    when = "ISO 8601 time (UTC if no offset) or a duration such as 2h (that long ago)"
    return [
        query("rcpt", "Recipient address (case-insensitive; <> optional)"),
        query("sender", "Envelope sender address (case-insensitive)", type="string"),
        query("message_id", "A Postline id or a Message-ID header value (<> optional)"),
        query("state", "Message state", type="string", enum=list(STATES)),
        query("since", f"Received at or after: {when}"),
        query("until", f"Received at or before: {when}"),
        query("domain", "A recipient domain"),
        query("older_than", "Received at least this long ago: a duration (2h) or seconds"),
        query("reply", "Text found in a last reply (case-insensitive)"),
        query(
            "limit",
            "Messages per page",
            type="integer",
            minimum=1,
            maximum=MAX_LIMIT,
            default=DEFAULT_LIMIT,
        ),
        query("cursor", "next_cursor of the previous page"),
    ]


def _id_parameter() -> dict[str, Any]:
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "The Postline message id (refused-<event id> for a refusal)",
        "schema": {"type": "string"},
    }


def _schemas() -> dict[str, Any]:
    event = Event.model_json_schema(ref_template=REF)
    schemas: dict[str, Any] = event.pop("$defs", {})
    schemas["Event"] = event
    schemas.update(queue_schemas())
    schemas.update(
        Error=object_schema({"error": {"type": "string"}}),
        MessagePage=object_schema(
            {"messages": _list("Message"), "next_cursor": _NULLABLE_STRING},
            "A page of messages; next_cursor is null on the last page",
        ),
        MessageList=object_schema({"messages": _list("Message")}),
        Submission=object_schema(
            {
                "client_ip": _NULLABLE_STRING,
                "helo": _NULLABLE_STRING,
                "auth_user": _NULLABLE_STRING,
                "tls": {**_NULLABLE_STRING, "description": "TLS version, null: plaintext"},
            }
        ),
        Reply=object_schema(
            {
                "code": {"type": "integer", "minimum": 200, "maximum": 599},
                "enhanced": _NULLABLE_STRING,
                "text": {"type": "string"},
            }
        ),
        Recipient=object_schema(
            {
                "address": {"type": "string"},
                "state": {"type": "string", "enum": list(STATES)},
                "reply": {"anyOf": [ref("Reply"), {"type": "null"}]},
                "attempts": {"type": "integer", "minimum": 0},
                "mx": {**_NULLABLE_STRING, "description": "name[ip]:port of the last attempt"},
                "next_attempt_at": _TIME,
            }
        ),
        Message=object_schema(
            {
                "message_id": {"type": "string"},
                "state": {"type": "string", "enum": list(STATES)},
                "partly_delivered": {"type": "boolean"},
                "mail_from": _NULLABLE_STRING,
                "received_at": _TIME,
                "size": {"type": ["integer", "null"]},
                "subject": _NULLABLE_STRING,
                "header_message_id": _NULLABLE_STRING,
                "submission": ref("Submission"),
                "recipients": _list("Recipient"),
                "events": {**_list("Event"), "description": "Every event, in time order"},
                "diagnosis": {"type": "string", "pattern": "^Diagnosis: "},
            },
            "One message in the `postline trace --json` shape",
        ),
    )
    return schemas


def _security_schemes() -> dict[str, Any]:
    return {
        "bearer": {"type": "http", "scheme": "bearer", "description": "A line of the tokens file"},
        "session": {"type": "apiKey", "in": "cookie", "name": "postline_session"},
    }


def _list(model: str) -> dict[str, Any]:
    return {"type": "array", "items": ref(model)}


def _html(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _form(fields: dict[str, str]) -> dict[str, Any]:
    properties = {"csrf": {"type": "string", "description": "The form's CSRF value"}}
    properties.update({name: {"type": "string", "description": d} for name, d in fields.items()})
    schema = {"type": "object", "properties": properties, "required": ["csrf"]}
    return {
        "required": True,
        "content": {"application/x-www-form-urlencoded": {"schema": schema}},
    }
