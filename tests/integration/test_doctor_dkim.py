"""``postline doctor``'s DKIM lines against a real DNS server on loopback.

Each key of ``[filter.dkim]`` must be published at ``<selector>._domainkey.<domain>``:
its own record passes, a missing name, a name without TXT and a record of
another key (a rotation half done) fail, each said so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w

from postline.app.doctor.dkim import dkim_checks
from postline.app.doctor.report import Check
from postline.app.settings import load_settings
from postline.filter.dkim_keys import generate
from tests.support.dns_server import DnsServer


def _key(folder: Path, name: str) -> tuple[Path, str]:
    pem, record = generate("ed25519")
    path = folder / f"{name}.pem"
    path.write_bytes(pem)
    path.chmod(0o600)
    return path, record


def _settings(folder: Path, dns: DnsServer, keys: list[dict[str, Any]], chain: list[str]) -> Any:
    config = {
        "filter": {"chain": chain, "dkim": {"keys": keys}},
        "delivery": {"dns_nameservers": [dns.address]},
    }
    path = folder / "postline.toml"
    path.write_text(tomli_w.dumps(config))
    return load_settings(path)


async def test_each_key_is_named_published_missing_or_another_key(tmp_path: Path) -> None:
    good, good_record = _key(tmp_path, "good")
    rotated, _ = _key(tmp_path, "rotated")
    _, old_record = _key(tmp_path, "old")
    absent, _ = _key(tmp_path, "absent")
    bare, _ = _key(tmp_path, "bare")
    with DnsServer() as dns:
        dns.add_txt("s1._domainkey.example.test", good_record)
        dns.add_txt("s2._domainkey.example.test", old_record)
        dns.add_a("s4._domainkey.example.test", "127.0.0.1")
        keys = [
            {"domain": "example.test", "selector": "s1", "key_file": str(good)},
            {"domain": "example.test", "selector": "s2", "key_file": str(rotated)},
            {"domain": "example.test", "selector": "s3", "key_file": str(absent)},
            {"domain": "example.test", "selector": "s4", "key_file": str(bare)},
        ]
        settings = _settings(tmp_path, dns, keys, ["headers", "dkim"])
        checks: list[Check] = await dkim_checks(settings)
    by_name = {check.check: check for check in checks}
    assert by_name["dkim s1._domainkey.example.test"].status == "PASS"
    assert by_name["dkim s2._domainkey.example.test"].status == "FAIL"
    assert "another key" in by_name["dkim s2._domainkey.example.test"].found
    assert "NXDOMAIN" in by_name["dkim s3._domainkey.example.test"].found
    assert "no TXT record" in by_name["dkim s4._domainkey.example.test"].found
    assert all("publish the TXT record" in c.advice for c in checks if c.status == "FAIL")


async def test_no_line_when_dkim_is_not_in_the_chain(tmp_path: Path) -> None:
    key, _ = _key(tmp_path, "k")
    with DnsServer() as dns:
        keys = [{"domain": "example.test", "selector": "s1", "key_file": str(key)}]
        settings = _settings(tmp_path, dns, keys, ["headers"])
        assert await dkim_checks(settings) == []
