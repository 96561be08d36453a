"""The OpenAPI description of the queue routes (``queueapi``), for ``openapi.document``."""

from __future__ import annotations

from typing import Any

from postline.audit.oaschema import json_response, object_schema, ref
from postline.audit.queueparams import MAX_ACTOR, MAX_IDS, MAX_REASON
from postline.control import ACTIONS

_NULLABLE_STRING = {"type": ["string", "null"]}


def queue_paths() -> dict[str, Any]:
    return {
        "/v1/queue/{action}": {
            "post": {
                "operationId": "queueAction",
                "summary": "Retry, delete, hold, release or bounce waiting messages",
                "description": "Exactly one of ids, all or filters chooses the messages. "
                "Not a dry run: the action is recorded (confirmed) before the answer, and "
                "applied by delivery; poll /v1/queue/requests/{request_id} for progress.",
                "parameters": [
                    {
                        "name": "action",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": list(ACTIONS)},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": ref("QueueSelection")}},
                },
                "responses": {
                    "200": json_response("What matched, and the request id", "QueueAnswer"),
                    "400": json_response("The action or the body cannot be used", "Error"),
                    "401": json_response("No valid token", "Error"),
                    "415": json_response("The body is not sent as application/json", "Error"),
                    "503": json_response("The broker did not confirm: nothing was done", "Error"),
                },
            }
        },
        "/v1/queue/requests/{request_id}": {
            "get": {
                "operationId": "queueRequest",
                "summary": "How far a queue action has got, message by message",
                "parameters": [
                    {
                        "name": "request_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": json_response("Applied, gone and pending messages", "QueueStatus"),
                    "401": json_response("No valid token", "Error"),
                    "404": json_response("No such request (remembered for some hours)", "Error"),
                    "503": json_response("Queue actions are not available here", "Error"),
                },
            }
        },
    }


def queue_schemas() -> dict[str, Any]:
    ids = {"type": "array", "items": {"type": "string"}}
    not_waiting = {"type": "array", "items": ref("NotWaiting")}
    selection = {
        "ids": {**ids, "minItems": 1, "maxItems": MAX_IDS},
        "all": {"type": "boolean"},
        "state": {"type": "string", "enum": ["deferred", "held", "parked"]},
        "domain": {"type": "string"},
        "sender": {"type": "string"},
        "rcpt": {"type": "string"},
        "older_than": {"type": ["string", "number"], "description": "2h, 30m, or seconds"},
        "reply": {"type": "string"},
        "dry_run": {"type": "boolean", "default": False},
        "reason": {"type": "string", "maxLength": MAX_REASON},
        "keep": {"type": "boolean", "description": "hold only: never expire while held"},
        "actor": {"type": "string", "maxLength": MAX_ACTOR},
    }
    return {
        "QueueSelection": {
            "type": "object",
            "properties": selection,
            "additionalProperties": False,
            "description": "Exactly one of ids, all (true) or some filters",
        },
        "NotWaiting": object_schema({"id": {"type": "string"}, "state": {"type": "string"}}),
        "QueueAnswer": object_schema(
            {
                "action": {"type": "string", "enum": list(ACTIONS)},
                "dry_run": {"type": "boolean"},
                "matched": {"type": "integer", "minimum": 0},
                "ids": ids,
                "not_waiting": not_waiting,
                "request_id": _NULLABLE_STRING,
            },
            "request_id is null on a dry run and when nothing matched",
        ),
        "QueueStatus": object_schema(
            {
                "request_id": {"type": "string"},
                "action": {"type": "string", "enum": list(ACTIONS)},
                "total": {"type": "integer", "minimum": 0},
                "applied": ids,
                "gone": {**not_waiting, "description": "No longer waiting (delivered, ...)"},
                "pending": ids,
            }
        ),
    }
