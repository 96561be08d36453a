"""Loopback networking for tests: free TCP ports, and HTTP status probes.

``free_port(*hosts)`` asks the kernel for a free port on the first host
(binding port 0), then checks that the same port is free on every other
host: for tests whose servers on several loopback addresses must share one
port (``[delivery] smtp_port`` is global). IPv6 hosts (``"::1"``) work too.
A port is only free "right now": the caller binds it soon after.

``http_status(url)`` is the status of a GET (errors included), or None when
nothing answers: for ``/readyz`` and ``/healthz`` of services under test.
"""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

_ATTEMPTS = 50


def free_port(*hosts: str) -> int:
    """A TCP port free on every one of ``hosts`` (default ``127.0.0.1``) right now."""
    first, *others = hosts or ("127.0.0.1",)
    for _ in range(_ATTEMPTS):
        with socket.socket(_family(first)) as probe:
            probe.bind((first, 0))
            port = int(probe.getsockname()[1])
        if all(_free(host, port) for host in others):
            return port
    raise RuntimeError(f"no port free on all of {hosts} in {_ATTEMPTS} tries")


def http_status(url: str, timeout: float = 2) -> int | None:
    """The HTTP status of a GET of ``url`` (4xx/5xx too); None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except OSError:
        return None


def _free(host: str, port: int) -> bool:
    with socket.socket(_family(host)) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
