"""What a doctor check produces, and how it is printed.

A ``Check`` is one line of the report: a ``Status`` (``PASS``, ``WARN``,
``FAIL``), the check's name (``broker topology``, ``file ingress.tls_cert``),
what it found and, for ``WARN``/``FAIL``, what to do. ``render`` makes the
text line, ``as_json`` the object of ``--json``; both pass every field through
``escape``: control characters are shown as ``\\xNN`` escapes and long texts
are cut, so a hostile server's reply cannot rewrite the terminal. Checks cut a
remote text to ``MAX_TEXT`` themselves (``escape(text)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

MAX_TEXT = 400
LINE = 2000


class Status(StrEnum):
    PASS = "PASS"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    """One line of the report (module docstring); ``advice`` is empty for ``PASS``."""

    status: Status
    check: str
    found: str
    advice: str = ""


def passed(check: str, found: str) -> Check:
    return Check(Status.PASS, check, found)


def warned(check: str, found: str, advice: str) -> Check:
    return Check(Status.WARN, check, found, advice)


def failed(check: str, found: str, advice: str) -> Check:
    return Check(Status.FAIL, check, found, advice)


def escape(text: object, limit: int = MAX_TEXT) -> str:
    """``text`` safe for a terminal: C0/C1 controls and DEL as ``\\xNN``, at most ``limit``."""
    shown = []
    for char in str(text):
        code = ord(char)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            shown.append(f"\\x{code:02x}")
        else:
            shown.append(char)
    result = "".join(shown)
    return result if len(result) <= limit else result[: limit - 3] + "..."


def render(check: Check) -> str:
    """``PASS  name: found`` or ``FAIL  name: found -> advice`` (one line)."""
    line = f"{check.status.value}  {escape(check.check)}: {escape(check.found, LINE)}"
    if check.advice and check.status is not Status.PASS:
        line += f" -> {escape(check.advice, LINE)}"
    return line


def as_json(check: Check) -> dict[str, str]:
    """The ``--json`` object of one check."""
    return {
        "status": check.status.value,
        "check": escape(check.check),
        "found": escape(check.found, LINE),
        "advice": escape(check.advice, LINE),
    }


def any_failed(checks: list[Check]) -> bool:
    return any(check.status is Status.FAIL for check in checks)
