"""Value forms of the configuration contract, parsed once and validated.

Each parser takes the operator's spelling (``"5d"``, ``"1m,5m*2"``,
``"[mx.example]:2525"``, ``"127.0.0.1:53"``) and returns a typed value or raises
``ValueError`` with a message fit to show next to the key that held it. The
``Annotated`` aliases at the bottom plug the parsers into pydantic models.

This module does no I/O and knows nothing about services.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, NamedTuple

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 1024,
    "kb": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mb": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gb": 1024**3,
    "gib": 1024**3,
}
_SIZE = re.compile(r"^\s*(\d+)\s*([a-zA-Z]*)\s*$")


def parse_duration(value: object) -> float:
    """``"90s"``, ``"5m"``, ``"2h"``, ``"5d"``, ``"1w"`` or a number of seconds -> seconds (> 0)."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '30s', '5m' or '5d'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"{value!r} is not a duration; use a number with s, m, h, d or w")
    if seconds <= 0:
        raise ValueError(f"{value!r}: a duration must be greater than zero")
    return seconds


def format_duration(seconds: float) -> str:
    """Shortest exact spelling of ``seconds``: 300 -> ``"5m"``, 90 -> ``"90s"``."""
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


def parse_size(value: object) -> int:
    """``"25MiB"``, ``"10M"``, ``"512k"`` or an integer number of bytes -> bytes (> 0)."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 26214400 or '25MiB'")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (match := _SIZE.match(value)):
        unit = match.group(2).lower()
        if unit not in _SIZE_UNITS:
            raise ValueError(f"{value!r}: unknown size unit {match.group(2)!r}")
        size = int(match.group(1)) * _SIZE_UNITS[unit]
    else:
        raise ValueError(f"{value!r} is not a size; use bytes or a number with k, M or G")
    if size <= 0:
        raise ValueError(f"{value!r}: a size must be greater than zero")
    return size


def parse_retry_schedule(value: object) -> tuple[float, ...]:
    """Haraka-style ``"1m,5m*2,30m*2,2h*8"`` -> delay in seconds before each retry.

    Entry *i* is the wait before retry *i + 1*; the last entry repeats once
    the schedule is used up (expiry is ``max_queue_lifetime``'s job).
    """
    if isinstance(value, list | tuple):
        return tuple(parse_duration(item) for item in value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected a schedule such as '1m,5m*2,30m*2,2h*8'")
    delays: list[float] = []
    for raw in value.split(","):
        item = raw.strip()
        spelled, _, times = item.partition("*")
        delay = parse_duration(spelled)
        count = 1
        if times:
            if not times.strip().isdigit() or int(times) < 1:
                raise ValueError(f"{item!r}: the repeat count after '*' must be a positive integer")
            count = int(times)
        delays.extend([delay] * count)
    return tuple(delays)


def format_retry_schedule(delays: tuple[float, ...]) -> str:
    """The schedule in its shortest spelling: runs of one delay become ``delay*N``."""
    parts: list[str] = []
    for delay in delays:
        spelled = format_duration(delay)
        if parts and parts[-1].partition("*")[0] == spelled:
            _, _, times = parts[-1].partition("*")
            parts[-1] = f"{spelled}*{int(times or 1) + 1}"
        else:
            parts.append(spelled)
    return ",".join(parts)


def delay_for_attempt(schedule: tuple[float, ...], attempt: int) -> float:
    """Wait before retry number ``attempt`` (1-based); the last entry repeats."""
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    return schedule[min(attempt, len(schedule)) - 1]


class HostPort(NamedTuple):
    """A ``host:port`` pair; IPv6 hosts are spelled ``[::1]:25`` and stored bare."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_host_port(value: object, default_port: int | None = None) -> HostPort:
    """``"host:port"``, ``"[v6]:port"``, or ``"host"`` when ``default_port`` is given."""
    if isinstance(value, HostPort):
        return value
    if isinstance(value, list | tuple) and len(value) == 2:
        value = f"{value[0]}:{value[1]}"
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected 'host:port'")
    text = value.strip()
    match = re.fullmatch(r"\[([^\]]+)\](?::(\d+))?|([^:\[\]]+)(?::(\d+))?", text)
    if match is None:
        try:  # a bare IPv6 address without a port
            ipaddress.IPv6Address(text)
        except ValueError:
            raise ValueError(f"{value!r} is not 'host:port'") from None
        host, port_text = text, None
    else:
        host = match.group(1) or match.group(3)
        port_text = match.group(2) or match.group(4)
    if port_text is None:
        if default_port is None:
            raise ValueError(f"{value!r} needs a port, as in 'host:port'")
        return HostPort(host, default_port)
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"{value!r}: port {port} is outside 0-65535")
    return HostPort(host, port)


class NextHop(NamedTuple):
    """Where to send instead of the recipient domain's MX (routes, smarthost).

    Postfix spelling: ``[host]:port`` means "this host, no MX lookup";
    ``host:port`` means "look up MX records of host".
    """

    host: str
    port: int
    mx_lookup: bool

    def __str__(self) -> str:
        host = f"[{self.host}]" if not self.mx_lookup else self.host
        return f"{host}:{self.port}"


def parse_next_hop(value: object, default_port: int = 25) -> NextHop:
    """``"[relay.example]:587"`` (no MX lookup) or ``"relay.example:25"`` (MX lookup)."""
    if isinstance(value, NextHop):
        return value
    if not isinstance(value, str):
        raise ValueError("expected '[host]:port' or 'host:port'")
    text = value.strip()
    literal = text.startswith("[")
    if literal and text.count(":") > 1 and not re.match(r"^\[[^\]]+\](:\d+)?$", text):
        raise ValueError(f"{value!r} is not '[host]:port'")
    hp = parse_host_port(text, default_port=default_port)
    return NextHop(hp.host, hp.port, mx_lookup=not literal)


def parse_network(value: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """A CIDR such as ``10.0.0.0/8`` or ``2001:db8::/32`` (host bits allowed)."""
    if isinstance(value, ipaddress.IPv4Network | ipaddress.IPv6Network):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a CIDR such as '10.0.0.0/8'")
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IPv4 or IPv6 network") from None


def _as_str(value: Any) -> str:
    return str(value)


Duration = Annotated[float, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
RetrySchedule = Annotated[
    tuple[float, ...],
    BeforeValidator(parse_retry_schedule),
    PlainSerializer(format_retry_schedule, return_type=str),
]
Listen = Annotated[HostPort, BeforeValidator(parse_host_port), PlainSerializer(_as_str)]
Nameserver = Annotated[
    HostPort, BeforeValidator(lambda v: parse_host_port(v, 53)), PlainSerializer(_as_str)
]
Hop = Annotated[NextHop, BeforeValidator(parse_next_hop), PlainSerializer(_as_str)]
Network = Annotated[
    ipaddress.IPv4Network | ipaddress.IPv6Network,
    BeforeValidator(parse_network),
    PlainSerializer(_as_str),
]
