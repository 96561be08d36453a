"""``postline dkim keygen``: a private key (0600) and a TXT record that verifies its signatures."""

from __future__ import annotations

import stat
from pathlib import Path

import dkim as dkimpy
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest

from postline.app.cli import main
from postline.filter.dkim import DkimFilter
from tests.unit.filter.helpers import message, plain, settings


def parse_zone_line(line: str) -> tuple[str, int, str]:
    """(owner, ttl, record) of ``owner TTL IN TXT "..." ...``; dnspython checks the rdata."""
    owner, ttl, klass, kind, rdata = line.split(maxsplit=4)
    assert (klass, kind) == ("IN", "TXT")
    txt = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.TXT, rdata)
    strings = txt.strings  # type: ignore[attr-defined]
    assert all(len(s) <= 255 for s in strings)
    return owner, int(ttl), b"".join(strings).decode("ascii")


@pytest.mark.parametrize(("algorithm", "bits"), [("rsa", 2048), ("rsa", 3072), ("ed25519", 0)])
async def test_keygen_writes_a_private_key_and_prints_a_txt_record_that_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], algorithm: str, bits: int
) -> None:
    out = tmp_path / "key.pem"
    argv = ["dkim", "keygen", "Company.Test", "--selector", "s2026", "--algorithm", algorithm]
    argv += ["--out", str(out)] + (["--bits", str(bits)] if bits else [])
    assert main(argv) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    owner, ttl, record = parse_zone_line(capsys.readouterr().out.strip())
    assert owner == "s2026._domainkey.company.test." and ttl == 3600
    assert record.startswith(f"v=DKIM1; k={algorithm}; p=")
    keys = [{"domain": "company.test", "selector": "s2026", "key_file": str(out)}]
    signed = message(plain())
    await DkimFilter(settings(dkim={"keys": keys})).apply(signed)

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        return record.encode() if name == b"s2026._domainkey.company.test." else b""

    assert dkimpy.verify(signed.to_bytes(), dnsfunc=lookup)


@pytest.mark.parametrize(
    ("argv", "code", "error"),
    [
        (["example.org", "--selector", "s1", "--bits", "1024"], 2, "at least 2048"),
        (["not a domain", "--selector", "s1"], 2, "dkim keygen: domain:"),
        (["example.org", "--selector", "bad_sel"], 2, "dkim keygen: selector:"),
    ],
)
def test_keygen_refuses_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], code: int, error: str
) -> None:
    out = tmp_path / "key.pem"
    assert main(["dkim", "keygen", *argv, "--out", str(out)]) == code
    assert error in capsys.readouterr().err
    assert not out.exists()


def test_keygen_never_overwrites_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "key.pem"
    out.write_bytes(b"the key in use")
    assert main(["dkim", "keygen", "example.org", "--selector", "s1", "--out", str(out)]) == 1
    assert "exists" in capsys.readouterr().err
    assert out.read_bytes() == b"the key in use"
