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
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from postline.app.commands.common import UsageError
from postline.app.commands.trace_text import render

TIMEOUT = 30.0
NOTHING = 1
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


class ApiError(Exception):
    """The API could not be asked, or answered with an error: exit 2 with this line."""


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "trace", help="show where a message is and why (the four steps and a diagnosis)"
    )
    parser.add_argument("target", nargs="?", metavar="ADDRESS|MESSAGE-ID")
    parser.add_argument("--sender", metavar="ADDRESS", help="match this envelope sender")
    parser.add_argument("--since", metavar="DURATION", help="only messages of the last 2h, 3d...")
    parser.add_argument("--limit", type=int, metavar="N", help="at most N messages (1-500)")
    parser.add_argument("--json", action="store_true", help="print the API's JSON document")
    parser.add_argument("--api", metavar="URL", help="the audit API (default: [audit] api_listen)")
    parser.add_argument("--token", help="API token (default: $POSTLINE_API_TOKEN, tokens file)")
    parser.set_defaults(func=_trace)


def _trace(args: argparse.Namespace) -> int:
    query = build_query(args)
    base, token = _endpoint(args)
    try:
        document = fetch(base, query, token)
        if not document.get("messages") and "rcpt" in query and "sender" not in query:
            document = fetch(base, {**_without(query, "rcpt"), "message_id": args.target}, token)
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


def fetch(base: str, query: dict[str, str], token: str | None) -> dict[str, Any]:
    """``GET {base}/v1/messages?{query}`` as JSON; ``ApiError`` when that fails."""
    url = f"{base.rstrip('/')}/v1/messages?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            body = response.read()
    except urllib.error.HTTPError as error:
        raise ApiError(_http_error(base, error)) from None
    except (urllib.error.URLError, OSError) as error:
        why = getattr(error, "reason", error)
        raise ApiError(f"cannot reach the audit API at {base}: {why}") from None
    try:
        document = json.loads(body)
    except ValueError:
        raise ApiError(f"the audit API at {base} did not answer JSON") from None
    if not isinstance(document, dict):
        raise ApiError(f"the audit API at {base} answered an unexpected document")
    return document


def _http_error(base: str, error: urllib.error.HTTPError) -> str:
    if error.code == 401:
        return f"the audit API at {base} needs a valid token (--token or POSTLINE_API_TOKEN)"
    try:
        said = json.loads(error.read()).get("error")
    except (ValueError, AttributeError, OSError):
        said = None
    return f"the audit API at {base} answered {error.code}" + (f": {said}" if said else "")


def _endpoint(args: argparse.Namespace) -> tuple[str, str | None]:
    """The API's base URL and the token, from the arguments, the environment and the config."""
    token = args.token or os.environ.get("POSTLINE_API_TOKEN") or None
    if args.api and token:
        return args.api, token
    from postline.app.settings import load_settings

    audit = load_settings(args.config).audit
    base = args.api
    if base is None:
        if audit.api_listen is None:
            raise UsageError("trace: [audit] api_listen is not set; give --api URL")
        host = WILDCARDS.get(audit.api_listen.host, audit.api_listen.host)
        netloc = f"[{host}]" if ":" in host else host
        base = f"http://{netloc}:{audit.api_listen.port}"
    if token is None and audit.api_tokens_file is not None:
        token = first_token(Path(audit.api_tokens_file))
    return base, token


def first_token(path: Path) -> str | None:
    """The first token the API accepts in a tokens file (``name:token`` or ``token`` lines;
    blank lines, ``#`` comments and tokens too short for the API are skipped)."""
    from postline.audit.auth import MIN_TOKEN_LENGTH

    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as error:
        raise UsageError(f"trace: cannot read [audit] api_tokens_file: {error}") from None
    for line in (raw.strip() for raw in lines):
        if not line or line.startswith("#"):
            continue
        name, colon, token = line.partition(":")
        token = (token if colon else name).strip()
        if len(token) >= MIN_TOKEN_LENGTH:
            return token
    return None


def _without(query: dict[str, str], key: str) -> dict[str, str]:
    return {k: v for k, v in query.items() if k != key}


def _described(query: dict[str, str]) -> str:
    words = {"rcpt": "recipient", "sender": "sender", "message_id": "message id"}
    parts = [f"{words[k]} {v}" for k, v in query.items() if k in words]
    if "since" in query:
        parts.append(f"since {query['since']}")
    return " and ".join(parts) or "the query"
