"""The ``postline`` command against the real broker: one clear line on failure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.broker import BROKER_URL, new_namespace
from tests.support.relay import child_env

pytestmark = pytest.mark.integration


def postline(tmp_path: Path, text: str, *command: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "postline.toml"
    config.write_text(text)
    return subprocess.run(
        [sys.executable, "-m", "postline.app", "--config", str(config), *command],
        capture_output=True, text=True, env=child_env(), timeout=60,
    )  # fmt: skip


def test_topology_declare_is_idempotent_and_reports_what_it_declared(
    tmp_path: Path, broker_settings
) -> None:
    settings = broker_settings()  # the fixture deletes the namespace afterwards
    text = f'[broker]\nurl = "{BROKER_URL}"\nnamespace = "{settings.broker.namespace}"\n'
    for _ in range(2):
        done = postline(tmp_path, text, "topology", "declare")
        assert done.returncode == 0, done.stderr
        assert f"in namespace {settings.broker.namespace}" in done.stdout


def test_topology_declare_without_a_broker_fails_with_one_clear_line(tmp_path: Path) -> None:
    text = f'[broker]\nurl = "amqp://guest:guest@127.0.0.1:1/"\nnamespace = "{new_namespace()}"\n'
    done = postline(tmp_path, text, "topology", "declare")
    assert done.returncode == 1
    assert done.stderr.startswith("postline: cannot reach RabbitMQ:")
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stdout + done.stderr


def test_config_check_masks_passwords_and_names_bad_keys(tmp_path: Path) -> None:
    done = postline(tmp_path, '[broker]\nurl = "amqp://u:hunter2@rabbit:5672/"\n', "config")
    assert done.returncode == 0
    assert "hunter2" not in done.stdout and "amqp://u:********@rabbit:5672/" in done.stdout
    bad = postline(tmp_path, "[ingress]\nmax_recipients = 0\n", "config", "check")
    assert bad.returncode == 2
    assert "ingress.max_recipients: Input should be greater than or equal to 1" in bad.stderr
