"""``postline queue``: see what is waiting and act on it, through the audit API.

``postline [--config FILE] queue list [--state deferred|held|parked|all]
[--domain D] [--sender S] [--rcpt R] [--older-than DURATION] [--reply TEXT]
[--json] [--api URL] [--token T]``: one line per waiting message (id, age,
attempts, next attempt, sender, the recipients still waiting, the last
reply; ``queue_text``), from ``GET /v1/messages`` (the audit index: fast, it
never touches the queues). Default state ``deferred``; ``all`` is deferred,
held and parked. ``--json`` prints ``{"messages": [summary...]}``.

``postline queue retry|delete|hold|release|bounce (ID... | --all | FILTERS)
[--dry-run] [--yes] [--reason TEXT] [--keep] [--wait SECONDS]``:

1. a dry-run ``POST /v1/queue/{action}`` with the selection counts the
   matches (``N messages match``; explicit ids that are unknown or not
   waiting are named on stderr); ``--dry-run`` stops there, listing them;
2. more than ``CONFIRM_ABOVE`` matches need ``--yes``, or a ``y`` typed on
   a terminal; without a terminal the command refuses with one line;
3. the matched ids are sent in chunks of ``CHUNK`` (``ids``, ``reason``,
   ``keep``, ``actor`` = the OS user; a token's name wins on the server),
   then ``GET /v1/queue/requests/{id}`` is polled until nothing is pending or
   ``--wait`` seconds (default 60) have passed, with a progress bar on stderr;
4. it names the ids no longer waiting (already delivered, unknown, ...) and
   those still pending, and ends with ``done N, no longer waiting M, still
   pending K``.

Without a selection of its own an action applies to every state the API
allows for it (``--state`` narrows). The API and its token are found as for
``trace`` (``api_client``). Exit status: 0 done; 1 nothing matched, the
confirmation was declined, or some are still pending after ``--wait``; 2 bad
arguments, an unreachable API or an error answer from it.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from postline.app.commands.api_client import ApiClient, ApiError, add_api_arguments, client_of
from postline.app.commands.common import UsageError
from postline.app.commands.queue_text import Progress, named, summary, table
from postline.app.commands.trace_text import clean

ACTIONS = ("retry", "delete", "hold", "release", "bounce")
STATES = ("deferred", "held", "parked", "all")
FILTERS = ("state", "domain", "sender", "rcpt", "older_than", "reply")
CHUNK = 100
CONFIRM_ABOVE = 10
PAGE = 500
POLL_INTERVAL = 0.5
Json = dict[str, Any]


def register(commands: Any) -> None:
    parser = commands.add_parser("queue", help="list waiting mail; retry, delete, hold, bounce it")
    verbs = parser.add_subparsers(dest="queue_command", required=True, metavar="ACTION")
    listing = verbs.add_parser("list", help="one line per waiting message")
    _filter_arguments(listing)
    listing.add_argument("--json", action="store_true", help="print the summaries as JSON")
    add_api_arguments(listing)
    listing.set_defaults(func=_list, state="deferred")
    for action in ACTIONS:
        verb = verbs.add_parser(action, help=f"{action} waiting messages (ids, --all or filters)")
        verb.add_argument("ids", nargs="*", metavar="ID", help="message ids")
        verb.add_argument("--all", action="store_true", help="every message the action applies to")
        _filter_arguments(verb)
        verb.add_argument("--dry-run", action="store_true", help="only count and list the matches")
        verb.add_argument("--yes", action="store_true", help="act on more than 10 without asking")
        verb.add_argument("--reason", metavar="TEXT", help="why (in the event and the trail)")
        verb.add_argument("--keep", action="store_true", help="hold: never expire while held")
        verb.add_argument(
            "--wait", type=float, default=60.0, metavar="SECONDS", help="wait for it (default 60)"
        )
        add_api_arguments(verb)
        verb.set_defaults(func=_act, action=action)


def _filter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state", choices=STATES, help="deferred, held, parked or all")
    parser.add_argument("--domain", metavar="D", help="a recipient domain")
    parser.add_argument("--sender", metavar="S", help="the envelope sender")
    parser.add_argument("--rcpt", metavar="R", help="a recipient address")
    parser.add_argument("--older-than", metavar="DURATION", help="received longer ago (2h, 3d)")
    parser.add_argument("--reply", metavar="TEXT", help="text in the last reply")


def filters_of(args: argparse.Namespace, command: str) -> Json:
    """The filters given, as the API spells them (``older_than`` as a duration; ``all``
    state left out: every state the API allows)."""
    from postline.values import format_duration, parse_duration

    found: Json = {}
    for name in FILTERS:
        value = getattr(args, name, None)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if name == "older_than":
            try:
                value = format_duration(parse_duration(value))
            except ValueError as error:
                raise UsageError(f"{command}: --older-than: {error}") from None
        if name == "state" and value == "all":
            continue
        found[name] = value.strip() if isinstance(value, str) else value
    return found


def selection_of(args: argparse.Namespace) -> Json:
    """Exactly one of the ids, ``--all`` or filters, as the API's body; else ``UsageError``."""
    command = f"queue {args.action}"
    filters = filters_of(args, command)
    given = [bool(args.ids), args.all, bool(filters) or args.state == "all"]
    if sum(given) != 1:
        raise UsageError(f"{command}: give message ids, --all or filters (exactly one of them)")
    if args.keep and args.action != "hold":
        raise UsageError(f"{command}: --keep applies to hold only")
    if args.wait < 0:
        raise UsageError(f"{command}: --wait must not be negative")
    if args.ids:
        return {"ids": list(dict.fromkeys(args.ids))}
    return {"all": True} if args.all or not filters else filters


def _list(args: argparse.Namespace) -> int:
    filters = filters_of(args, "queue list")
    api = client_of(args, "queue list")
    states = ("deferred", "held", "parked") if args.state == "all" else (args.state,)
    now = datetime.now(UTC)
    try:
        messages = [m for state in states for m in _messages(api, {**filters, "state": state})]
    except ApiError as error:
        print(f"postline: queue list: {error}", file=sys.stderr)
        return 2
    messages.sort(key=lambda m: str(m.get("received_at") or ""), reverse=True)
    items = [summary(message, now) for message in messages]
    if args.json:
        print(json.dumps({"messages": items}, indent=2, ensure_ascii=False))
    elif items:
        print("\n".join(table(items, now)))
    if not items:
        print(f"postline: queue list: no {args.state} message matches", file=sys.stderr)
        return 1
    return 0


def _messages(api: ApiClient, query: Json) -> list[Json]:
    """Every page of ``/v1/messages`` for ``query``."""
    found: list[Json] = []
    cursor: str | None = None
    while True:
        page = api.get("/v1/messages", {**query, "limit": str(PAGE), **_cursor(cursor)})
        found += [m for m in page.get("messages") or [] if isinstance(m, dict)]
        cursor = page.get("next_cursor")
        if not cursor:
            return found


def _cursor(cursor: str | None) -> dict[str, str]:
    return {"cursor": cursor} if cursor else {}


def _act(args: argparse.Namespace) -> int:
    command = f"queue {args.action}"
    selection = selection_of(args)
    api = client_of(args, command)
    body: Json = {"reason": args.reason, "actor": actor()}
    if args.action == "hold":
        body["keep"] = args.keep
    try:
        return _run(args, api, selection, body)
    except ApiError as error:
        print(f"postline: {command}: {error}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, api: ApiClient, selection: Json, body: Json) -> int:
    command = f"queue {args.action}"
    path = f"/v1/queue/{args.action}"
    preview = api.post(path, {**selection, **body, "dry_run": True})
    ids = [str(i) for i in preview.get("ids") or []]
    not_waiting = _items(preview.get("not_waiting"))
    if not_waiting:
        print(f"postline: {command}: not waiting: {named(not_waiting)}", file=sys.stderr)
    print(f"{len(ids)} message{'s' if len(ids) != 1 else ''} match{'es' if len(ids) == 1 else ''}")
    if args.dry_run:
        for message_id in ids:
            print(f"  {clean(message_id)}")
        return 0 if ids else 1
    if not ids:
        print(f"postline: {command}: nothing to {args.action}", file=sys.stderr)
        return 1
    if len(ids) > CONFIRM_ABOVE and not args.yes:
        answer = confirm(f"{args.action} {len(ids)} messages?")
        if answer is None:
            print(f"postline: {command}: {len(ids)} messages match and this is not a "
                  "terminal: give --yes to act on them", file=sys.stderr)  # fmt: skip
            return 2
        if not answer:
            print(f"postline: {command}: nothing done", file=sys.stderr)
            return 1
    progress = Progress(sys.stderr, len(ids), enabled=len(ids) > 1)
    requests, gone = _request(api, path, ids, body, progress)
    counts = _poll(api, requests, args.wait, progress, len(gone))
    return _report(counts, not_waiting + gone)


def confirm(question: str) -> bool | None:
    """The answer typed on the terminal (``y``/``yes``), or None when there is no terminal."""
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except (OSError, EOFError):
        return False
    return answer.strip().lower() in ("y", "yes")


def actor() -> str:
    """The OS user running the command (``unknown`` if the system cannot say)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _request(
    api: ApiClient, path: str, ids: list[str], body: Json, progress: Progress
) -> tuple[dict[str, list[str]], list[Json]]:
    """Send ``ids`` in chunks: each request id with its ids, and those no longer waiting."""
    requests: dict[str, list[str]] = {}
    gone: list[Json] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        answer = api.post(path, {**body, "ids": chunk, "dry_run": False})
        gone += _items(answer.get("not_waiting"))
        if answer.get("request_id"):
            requests[str(answer["request_id"])] = [str(i) for i in answer.get("ids") or chunk]
        progress.update("requested", start + len(chunk))
    progress.phase()
    return requests, gone


def _poll(
    api: ApiClient, requests: dict[str, list[str]], wait: float, progress: Progress, before: int
) -> Json:
    """Ask each request's state until nothing is pending or ``wait`` has passed."""
    states: dict[str, Json] = {}
    deadline = time.monotonic() + wait
    last_error: ApiError | None = None
    while True:
        for request_id in requests:
            if request_id in states and not states[request_id]["pending"]:
                continue
            try:
                states[request_id] = _state(api.get(f"/v1/queue/requests/{request_id}"))
            except ApiError as error:
                last_error = error
        counts = _counts(requests, states)
        progress.update("applied", before + len(counts["done"]) + len(counts["gone"]))
        if not counts["pending"] or time.monotonic() >= deadline:
            break
        time.sleep(POLL_INTERVAL)
    progress.finish()
    if counts["pending"] and last_error is not None:
        print(f"postline: asking for the requests' state: {last_error}", file=sys.stderr)
    return counts


def _state(document: Json) -> Json:
    return {
        "applied": [str(i) for i in document.get("applied") or []],
        "gone": _items(document.get("gone")),
        "pending": [str(i) for i in document.get("pending") or []],
    }


def _counts(requests: dict[str, list[str]], states: dict[str, Json]) -> Json:
    """Applied, gone and pending over every request (a request never answered: all pending)."""
    done: list[str] = []
    gone: list[Json] = []
    pending: list[str] = []
    for request_id, ids in requests.items():
        state = states.get(request_id)
        if state is None:
            pending += ids
            continue
        done += state["applied"]
        gone += state["gone"]
        pending += state["pending"]
    return {"done": done, "gone": gone, "pending": pending}


def _report(counts: Json, gone_before: list[Json]) -> int:
    """Which were no longer waiting and which are pending, then the counts as the last line."""
    gone = gone_before + counts["gone"]
    pending = counts["pending"]
    if gone:
        print(f"no longer waiting: {named(gone)}")
    if pending:
        more = f" and {len(pending) - 20} more" if len(pending) > 20 else ""
        print(f"still pending: {', '.join(clean(i) for i in pending[:20])}{more}")
    print(
        f"done {len(counts['done'])}, no longer waiting {len(gone)}, still pending {len(pending)}"
    )
    return 1 if pending else 0


def _items(value: object) -> list[Json]:
    """``[{"id", "state"}...]`` of an answer, whatever else it holds."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]
