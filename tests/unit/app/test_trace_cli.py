"""``postline trace`` against an HTTP server on loopback: the query, the token, the exit codes."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from postline.app.cli import main
from postline.app.commands.trace import first_token, is_address, since

FIXTURES = Path(__file__).parent / "fixtures"
EMPTY: dict[str, Any] = {"messages": [], "next_cursor": None}


@dataclass
class FakeApi:
    """Answers ``GET /v1/messages`` with ``answers`` in turn; remembers every request."""

    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    requests: list[tuple[dict[str, list[str]], str | None]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            assert parsed.path == "/v1/messages"
            fake.requests.append(
                (urllib.parse.parse_qs(parsed.query), self.headers.get("Authorization"))
            )
            status, body = fake.answers.pop(0) if fake.answers else (200, EMPTY)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


def config(tmp_path: Path, port: int, tokens: str | None = None) -> str:
    lines = ["[audit]", f'api_listen = "127.0.0.1:{port}"']
    if tokens is not None:
        (tmp_path / "tokens").write_text(tokens)
        lines.append(f'api_tokens_file = "{tmp_path / "tokens"}"')
    path = tmp_path / "postline.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def document(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def test_an_address_asks_for_recipients_and_prints_the_steps_with_exit_0(
    api: FakeApi,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("POSTLINE_API_TOKEN", raising=False)
    api.answers.append((200, document("delivered")))
    code = main(["--config", config(tmp_path, api.port), "trace", "john@businesspartner.com"])
    out = capsys.readouterr().out
    assert code == 0
    [(query, auth)] = api.requests
    assert query == {"rcpt": ["john@businesspartner.com"]} and auth is None
    assert out.splitlines()[-1].startswith("Diagnosis: delivered: accepted by ")
    assert "1 submitted" in out and "4 delivered" in out


def test_sender_since_and_limit_go_into_the_query_and_the_token_comes_from_the_file(
    api: FakeApi,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("POSTLINE_API_TOKEN", raising=False)
    api.answers.append((200, document("refused")))
    path = config(
        tmp_path, api.port, tokens="# help desk\nhelpdesk:s3cret-token-for-help-desk\nother\n"
    )
    argv = ["--config", path, "trace", "john@x.test", "--sender", "mary@example.org"]
    assert main([*argv, "--since", "2h", "--limit", "5"]) == 0
    [(query, auth)] = api.requests
    assert query["rcpt"] == ["john@x.test"] and query["sender"] == ["mary@example.org"]
    assert query["limit"] == ["5"] and query["since"][0].endswith("Z")
    assert auth == "Bearer s3cret-token-for-help-desk"


def test_the_token_option_wins_over_the_environment_which_wins_over_the_file(
    api: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = config(tmp_path, api.port, tokens="from-file-token-0001\n")
    monkeypatch.setenv("POSTLINE_API_TOKEN", "from-env")
    main(["--config", path, "trace", "4QX7K2M9BDF0HJ3C"])
    main(["--config", path, "trace", "4QX7K2M9BDF0HJ3C", "--token", "from-option"])
    monkeypatch.delenv("POSTLINE_API_TOKEN")
    main(["--config", path, "trace", "4QX7K2M9BDF0HJ3C"])
    assert [auth for _, auth in api.requests] == [
        "Bearer from-env",
        "Bearer from-option",
        "Bearer from-file-token-0001",
    ]
    assert api.requests[0][0] == {"message_id": ["4QX7K2M9BDF0HJ3C"]}


def test_nothing_matched_is_exit_1_with_one_line_after_trying_the_address_as_a_message_id(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["trace", "nobody@x.test", "--api", api.url, "--token", "t"])
    captured = capsys.readouterr()
    assert code == 1
    assert captured.out == ""
    assert captured.err == "postline: trace: no message matches recipient nobody@x.test\n"
    assert [query for query, _ in api.requests] == [
        {"rcpt": ["nobody@x.test"]},
        {"message_id": ["nobody@x.test"]},
    ]


def test_json_prints_the_apis_document_as_it_came(
    api: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers.append((200, document("deferred")))
    code = main(["trace", "john@slow.example.net", "--json", "--api", api.url, "--token", "t"])
    assert code == 0
    assert json.loads(capsys.readouterr().out) == document("deferred")


def test_a_wrong_token_is_exit_2_saying_a_token_is_needed(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers.append((401, {"error": "unauthorized"}))
    assert main(["trace", "a@b.test", "--api", api.url, "--token", "wrong"]) == 2
    assert "needs a valid token" in capsys.readouterr().err


def test_a_bad_request_is_exit_2_with_the_apis_error(
    api: FakeApi, capsys: pytest.CaptureFixture[str]
) -> None:
    api.answers.append((400, {"error": "since: not a time"}))
    assert main(["trace", "a@b.test", "--api", api.url, "--token", "t"]) == 2
    assert capsys.readouterr().err.strip().endswith("answered 400: since: not a time")


def test_an_unreachable_api_is_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.support.net import free_port

    url = f"http://127.0.0.1:{free_port()}"
    assert main(["trace", "a@b.test", "--api", url, "--token", "t"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"postline: trace: cannot reach the audit API at {url}")


def test_usage_errors_are_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trace", "--api", "http://127.0.0.1:9", "--token", "t"]) == 2
    assert main(["trace", "a@b.test", "--since", "soon", "--api", "http://x", "--token", "t"]) == 2
    assert main(["trace", "a@b.test", "--limit", "0", "--api", "http://x", "--token", "t"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and all(line.startswith("postline: trace: ") for line in errors)


def test_what_counts_as_an_address_and_how_tokens_and_durations_are_read(tmp_path: Path) -> None:
    assert is_address("john@partner.test")
    assert not is_address("<q1.report@example.org>")
    assert not is_address("4QX7K2M9BDF0HJ3C")
    (tmp_path / "t").write_text("\n# comment\nshort\nnamed:tiny\nalone-token-of-length-24\n")
    assert first_token(tmp_path / "t") == "alone-token-of-length-24"
    from datetime import UTC, datetime

    assert since("90m", now=datetime(2026, 3, 4, 14, 0, tzinfo=UTC)) == "2026-03-04T12:30:00Z"
