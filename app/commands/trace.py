"""``postline trace ADDRESS|MESSAGE-ID``: where a message is, and why, from the audit API.

``postline [--config FILE] trace TARGET [--sender ADDRESS] [--since DURATION]
[--limit N] [--json] [--api URL] [--token TOKEN]``

* ``TARGET`` with an ``@`` and no angle brackets is an address: it matches
  recipients (``?rcpt=``; if nothing matches, it is tried as a ``Message-ID``
  value too). Anything else is a Postline queue id (``refused-...`` for a
  refusal) or a ``Message-ID`` header value (``?message_id=``). ``--sender``
  matches senders as well (``?sender=``); with ``--sender`` the target may
  be left out.
* The API is ``--api URL``, else ``http://`` + ``[audit] api_listen`` of the
  configuration (a wildcard address is reached on loopback). The token is
  ``--token``, else ``$POSTLINE_API_TOKEN``, else the first token in
  ``[audit] api_tokens_file`` (``name:token`` or ``token`` per line); none:
  no ``Authorization`` header.
* Output: per message, newest first, the four steps (``trace_text``), each
  message ending with its ``Diagnosis:`` line; ``--json`` prints the API's
  document as it came.
* Exit status: 0 when something matched; 1 with one line when nothing did;
  2 for bad arguments, an unreachable API or an error answer from it (401:
  a missing or wrong token).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from postline.app.commands.api_client import (
    ApiClient,
    ApiError,
    add_api_arguments,
    client_of,
    first_token,
)
from postline.app.commands.common import UsageError
from postline.app.commands.trace_text import render

__all__ = ["ApiError", "build_query", "first_token", "is_address", "render_all", "since"]
NOTHING = 1


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "trace", help="show where a message is and why (the four steps and a diagnosis)"
    )
    parser.add_argument("target", nargs="?", metavar="ADDRESS|MESSAGE-ID")
    parser.add_argument("--sender", metavar="ADDRESS", help="match this envelope sender")
    parser.add_argument("--since", metavar="DURATION", help="only messages of the last 2h, 3d...")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N messages (1-500)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON document")
    add_api_arguments(parser)
    parser.set_defaults(func=_trace)


def _trace(args: argparse.Namespace) -> int:
    query = build_query(args)
    api = client_of(args, "trace")
    try:
        document = fetch(api, query)
        if not document.get("messages") and "rcpt" in query and "sender" not in query:
            document = fetch(api, {**_without(query, "rcpt"), "message_id": args.target})
    except ApiError as error:
        print(f"postline: trace: {error}", file=sys.stderr)
        return 2
    messages = [m for m in document.get("messages") or [] if isinstance(m, dict)]
    if args.json:
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        print(render_all(messages), end="")
    if not messages:
        print(f"postline: trace: no message matches {_described(query)}", file=sys.stderr)
        return NOTHING
    return 0


def render_all(messages: list[dict[str, Any]]) -> str:
    """Every message's lines, newest first as the API sent them, a blank line between."""
    return "".join("\n".join(render(message)) + "\n\n" for message in messages).rstrip("\n") + (
        "\n" if messages else ""
    )


def build_query(args: argparse.Namespace) -> dict[str, str]:
    """The ``/v1/messages`` query of the arguments; ``UsageError`` when they make none."""
    target = (args.target or "").strip()
    if not target and not args.sender:
        raise UsageError("trace: give an address or a message id (or --sender ADDRESS)")
    query: dict[str, str] = {}
    if target:
        query["rcpt" if is_address(target) else "message_id"] = target
    if args.sender:
        query["sender"] = args.sender.strip()
    if args.since:
        query["since"] = since(args.since)
    if args.limit is not None:
        if not 1 <= args.limit <= 500:
            raise UsageError("trace: --limit must be between 1 and 500")
        query["limit"] = str(args.limit)
    return query


def is_address(target: str) -> bool:
    """``john@partner.test`` is an address; ``<id@host>`` and ``4Q8Z...`` are message ids."""
    return "@" in target and not target.startswith("<") and " " not in target


def since(duration: str, now: datetime | None = None) -> str:
    """``--since 2h`` -> the ISO 8601 UTC time two hours ago."""
    from postline.values import parse_duration

    try:
        seconds = parse_duration(duration)
    except ValueError as error:
        raise UsageError(f"trace: --since: {error}") from None
    start = (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    return start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fetch(api: ApiClient, query: dict[str, str]) -> dict[str, Any]:
    """``GET /v1/messages?{query}`` as JSON; ``ApiError`` when that fails."""
    return api.get("/v1/messages", query)


def _without(query: dict[str, str], key: str) -> dict[str, str]:
    return {k: v for k, v in query.items() if k != key}


def _described(query: dict[str, str]) -> str:
    words = {"rcpt": "recipient", "sender": "sender", "message_id": "message id"}
    parts = [f"{words[k]} {v}" for k, v in query.items() if k in words]
    if "since" in query:
        parts.append(f"since {query['since']}")
    return " and ".join(parts) or "the query"
