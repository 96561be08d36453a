"""``postline queue`` as text: the list's lines, its JSON summaries, the progress bar, the counts.

* ``summary(message, now)``: one waiting message of the audit API's JSON
  (``/v1/messages``, ``views.to_json``) reduced to what ``queue list`` shows:
  ``id``, ``state``, ``received_at``, ``age_seconds``, ``attempts`` (the most
  any waiting recipient had), ``next_attempt_at`` (the earliest of the waiting
  recipients), ``mail_from``, ``waiting`` (the recipients not in a final
  state), ``last_reply`` (``{"code", "enhanced", "text"}`` or None) and
  ``note``: for a parked message the stage it was parked from and why (its
  latest ``parked`` event; ``parked N times`` when it was parked from there
  before); for a held one who held it and why (its latest ``operator`` hold).
* ``table(summaries, now)``: a header line and one line per summary, the
  columns aligned: id, age, attempts, next attempt (``in 4m``, ``due``, or
  ``held``/``parked``), ``<sender>``, the waiting recipients, and the note
  with the last reply.
* ``Progress``: a bar on a terminal (redrawn with ``\\r``), a few plain lines
  elsewhere (a log never fills with bars).

Every value from the API is shown through ``clean``: control characters in a
sender, a recipient or a remote's reply are printed escaped, never sent to
the terminal. Pure functions except ``Progress``, which writes to its stream.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TextIO

from postline.app.commands.trace_text import clean, reply

Json = dict[str, Any]
FINAL = frozenset({"delivered", "bounced", "expired", "rejected", "refused", "deleted"})
SHOWN_RECIPIENTS = 3
HEADER = ("ID", "AGE", "TRIES", "NEXT", "SENDER", "WAITING FOR", "LAST REPLY")
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def parse_time(value: object) -> datetime | None:
    """An ISO 8601 time of the API (``Z`` or naive means UTC), or None."""
    if not isinstance(value, str):
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        return None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def compact(seconds: float) -> str:
    """``7980`` -> ``2h13m``: the two largest units, at least ``0s``."""
    left = max(0, int(seconds))
    parts: list[str] = []
    for unit, size in _UNITS:
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
        if len(parts) == 2:
            break
    return "".join(parts)


def summary(message: Json, now: datetime) -> Json:
    """What ``queue list`` shows of one message (module docstring)."""
    recipients = [r for r in message.get("recipients") or [] if isinstance(r, dict)]
    waiting = [r for r in recipients if r.get("state") not in FINAL]
    times = [t for r in waiting if (t := parse_time(r.get("next_attempt_at")))]
    received = parse_time(message.get("received_at"))
    replies = [r["reply"] for r in waiting if isinstance(r.get("reply"), dict)]
    return {
        "id": message.get("message_id"),
        "state": message.get("state"),
        "received_at": message.get("received_at"),
        "age_seconds": round((now - received).total_seconds()) if received else None,
        "attempts": max((int(r.get("attempts") or 0) for r in waiting), default=0),
        "next_attempt_at": min(times).isoformat().replace("+00:00", "Z") if times else None,
        "mail_from": message.get("mail_from"),
        "waiting": [r.get("address") for r in waiting],
        "last_reply": replies[0] if replies else None,
        "note": note(message),
    }


def note(message: Json) -> str | None:
    """Why a parked or held message sits where it does, from its latest event saying so."""
    events = [e for e in message.get("events") or [] if isinstance(e, dict)]
    state = message.get("state")
    if state == "parked":
        parked = [e for e in events if e.get("kind") == "parked"]
        if parked:
            last = parked[-1]
            text = f"parked from {clean(last.get('stage') or '?')}: {clean(last.get('reason'))}"
            count = last.get("count")
            if isinstance(count, int) and count > 1:
                text += f" (parked {count} times)"
            return text
        return "parked"
    if state == "held":
        holds = [e for e in events if e.get("kind") == "operator" and e.get("action") == "hold"]
        if holds:
            last = holds[-1]
            why = f": {clean(last['reason'])}" if last.get("reason") else ""
            return f"held by {clean(last.get('actor') or '?')}{why}"
        return "held"
    return None


def next_attempt(item: Json, now: datetime) -> str:
    """``in 4m`` / ``due`` for deferred mail; the state for held and parked mail."""
    if item.get("state") in ("held", "parked"):
        return clean(item["state"])
    at = parse_time(item.get("next_attempt_at"))
    if at is None:
        return "-"
    seconds = (at - now).total_seconds()
    return f"in {compact(seconds)}" if seconds > 0 else "due"


def recipients(addresses: list[object]) -> str:
    shown = ", ".join(clean(a) for a in addresses[:SHOWN_RECIPIENTS])
    more = len(addresses) - SHOWN_RECIPIENTS
    return shown + (f" +{more} more" if more > 0 else "") if addresses else "-"


def columns(item: Json, now: datetime) -> list[str]:
    """One summary's cells: id, age, attempts, next attempt, sender, waiting, last reply."""
    sender = item.get("mail_from")
    said = reply(item.get("last_reply")) or "-"
    if item.get("note"):
        said = f"{item['note']}; {said}" if item.get("last_reply") else str(item["note"])
    return [
        clean(item.get("id")),
        compact(item["age_seconds"]) if item.get("age_seconds") is not None else "?",
        str(item.get("attempts", 0)),
        next_attempt(item, now),
        f"<{clean(sender)}>" if sender is not None else "?",
        recipients(list(item.get("waiting") or [])),
        said,
    ]


def table(items: list[Json], now: datetime) -> list[str]:
    """The header and one line per summary, columns aligned (the last one is not padded)."""
    rows = [list(HEADER), *(columns(item, now) for item in items)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER) - 1)]
    return ["  ".join([*_padded(row, widths), row[-1]]) for row in rows]


def _padded(row: list[str], widths: list[int]) -> list[str]:
    """Every cell but the last padded to its column; age and attempts to the right."""
    return [
        cell.rjust(width) if index in (1, 2) else cell.ljust(width)
        for index, (cell, width) in enumerate(zip(row[:-1], widths, strict=True))
    ]


def named(items: list[Json], limit: int = 20) -> str:
    """``ID (delivered), ID2 (unknown)`` for ``{"id", "state"}`` items, at most ``limit``."""
    shown = [f"{clean(i.get('id'))} ({clean(i.get('state') or 'unknown')})" for i in items[:limit]]
    more = len(items) - limit
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


class Progress:
    """``label [#####.....] 120/500`` on a terminal; elsewhere a line at each quarter."""

    WIDTH = 30

    def __init__(self, stream: TextIO, total: int, enabled: bool = True) -> None:
        self.stream = stream
        self.total = max(total, 1)
        self.enabled = enabled
        self.tty = stream.isatty()
        self._quarter = -1
        self._drawn = False

    def update(self, label: str, done: int) -> None:
        if not self.enabled:
            return
        done = min(done, self.total)
        if self.tty:
            filled = self.WIDTH * done // self.total
            bar = "#" * filled + "." * (self.WIDTH - filled)
            self.stream.write(f"\r{label} [{bar}] {done}/{self.total}")
            self._drawn = True
        elif (quarter := 4 * done // self.total) > self._quarter:
            self._quarter = quarter
            self.stream.write(f"{label} {done}/{self.total}\n")
        self.stream.flush()

    def phase(self) -> None:
        """A new phase (another label): the next update starts its own quarters."""
        self.finish()
        self._quarter = -1

    def finish(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False
