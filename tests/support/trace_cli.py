"""Helpers for the ``postline trace`` end-to-end tests: the CLI, the API, waiting on a state.

``trace(relay, *args)`` runs ``python -m postline.app --config FILE trace ...``
as the operator would; ``api(relay, **query)`` asks the audit API of the same
relay; ``wait_for_state`` polls the API until a message for a recipient is in
one of the states wanted (and returns the API's document).
"""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from tests.support.relay import RelayProcess, child_env, eventually, postline_argv

Json = dict[str, Any]


def trace(relay: RelayProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """``postline --config FILE trace ARGS`` as a child process (text, exit code)."""
    return subprocess.run(
        postline_argv(relay.config_path, "trace", *args),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def api(relay: RelayProcess, path: str = "/v1/messages", **query: str) -> Json:
    """GET ``path`` on the relay's audit API (a JSON document; ``{}`` if it does not answer)."""
    url = f"http://127.0.0.1:{relay.api_port}{path}"
    if query:
        url += "?" + urllib.parse.urlencode(query)
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            document: Json = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return {}
    return document


def messages_for(relay: RelayProcess, **query: str) -> list[Json]:
    found: list[Json] = api(relay, **query).get("messages") or []
    return found


def wait_for_state(
    relay: RelayProcess, rcpt: str, states: tuple[str, ...], timeout: float = 30
) -> Json:
    """The API's document for ``rcpt`` once its newest message is in one of ``states``."""
    seen: list[Json] = []

    def reached() -> bool:
        seen[:] = messages_for(relay, rcpt=rcpt)
        return bool(seen) and seen[0].get("state") in states

    try:
        eventually(reached, timeout, f"a message for {rcpt} in state {'/'.join(states)}")
    except AssertionError:
        raise AssertionError(f"{rcpt}: last seen {json.dumps(seen)[:2000]}") from None
    return {"messages": list(seen)}


def steps(text: str) -> list[str]:
    """The step headings of trace output, in order: ``["1 submitted", "2 received", ...]``."""
    return [" ".join(line.split()[:2]) for line in text.splitlines() if line[:2] in _STEPS]


_STEPS = ("1 ", "2 ", "3 ", "4 ")


def diagnoses(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("Diagnosis: ")]
