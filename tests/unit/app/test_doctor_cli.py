"""``postline doctor`` argument handling: bad input exits 2 before anything is checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from postline.app.cli import main
from postline.app.doctor import _guarded
from postline.app.doctor.report import Check, Status


@pytest.mark.parametrize("address", ["not-an-address", "a@b.test\r\nDATA", "a b@c.test", "@c.test"])
def test_a_to_that_is_no_address_exits_2(address: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["doctor", "--to", address]) == 2
    err = capsys.readouterr().err
    assert err.startswith("postline: --to ") and err.count("\n") == 1


def test_a_configuration_that_does_not_load_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "postline.toml"
    config.write_text("[ingress]\nmax_recipients = 0\n")
    assert main(["--config", str(config), "doctor"]) == 2
    assert "ingress.max_recipients" in capsys.readouterr().err


async def test_a_group_that_breaks_becomes_one_fail_line() -> None:
    async def broken() -> list[Check]:
        raise RuntimeError("boom\x1b[2J")

    [line] = await _guarded("dns", broken())
    assert line.status is Status.FAIL and line.check == "dns"
    assert "RuntimeError" in line.found
