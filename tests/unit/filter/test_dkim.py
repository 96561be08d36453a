"""The dkim filter: signatures dkimpy verifies (RSA, Ed25519, both), key choice, reloads, limits."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dkim as dkimpy
import pytest
from prometheus_client import REGISTRY

from postline.filter.api import Verdict
from postline.filter.dkim import DkimFilter, from_domain, published_key_matches
from postline.filter.dkim_keys import generate, parse_key
from postline.filter.message import FilterMessage, MessageSealed
from postline.filter.registry import build_filters
from postline.filter.sections import DkimKeySettings
from postline.settings import ConfigError
from tests.unit.filter.helpers import crlf_bytes, message, plain, settings

Records = dict[str, str]


def new_key(directory: Path, name: str, algorithm: str = "rsa", bits: int = 2048) -> Path:
    pem, _ = generate(algorithm, bits)  # type: ignore[arg-type]
    path = directory / name
    path.write_bytes(pem)
    return path


def key_entry(path: Path, domain: str = "company.test", selector: str = "s1") -> dict[str, Any]:
    return {"domain": domain, "selector": selector, "key_file": str(path)}


def records_for(*entries: dict[str, Any]) -> Records:
    """The TXT records that publish ``entries``' public keys."""
    found = {}
    for entry in entries:
        _, _, record = parse_key(Path(entry["key_file"]).read_bytes())
        found[f"{entry['selector']}._domainkey.{entry['domain']}."] = record
    return found


def dns_of(records: Records) -> Callable[..., bytes]:
    def lookup(name: bytes | str, timeout: int = 5) -> bytes:
        key = name.decode() if isinstance(name, bytes) else name
        return records.get(key, "").encode()

    return lookup


def verifies(data: bytes, records: Records, index: int = 0) -> bool:
    """dkimpy's verdict on signature ``index`` of ``data`` (a failed check is False)."""
    try:
        return bool(dkimpy.DKIM(data).verify(idx=index, dnsfunc=dns_of(records)))
    except dkimpy.DKIMException:
        return False


def signer(*entries: dict[str, Any], **section: Any) -> DkimFilter:
    return DkimFilter(settings(dkim={"keys": list(entries), **section}))


def sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("algorithm", ["rsa", "ed25519"])
async def test_signature_verifies_with_the_published_key(tmp_path: Path, algorithm: str) -> None:
    entry = key_entry(new_key(tmp_path, "k.pem", algorithm))
    filtered = message(plain())
    decision = await signer(entry).apply(filtered)
    assert decision.verdict is Verdict.CONTINUE
    assert decision.reason == f"signed {algorithm} d=company.test s=s1"
    data = filtered.to_bytes()
    assert data.startswith(b"DKIM-Signature: v=1; a=" + (b"rsa" if algorithm == "rsa" else b"ed"))
    assert verifies(data, records_for(entry))


async def test_dual_signing_adds_an_rsa_and_an_ed25519_signature_that_each_verify(
    tmp_path: Path,
) -> None:
    rsa = key_entry(new_key(tmp_path, "rsa.pem"), selector="rsa1")
    ed = key_entry(new_key(tmp_path, "ed.pem", "ed25519"), selector="ed1")
    filtered = message(plain())
    await signer(rsa, ed).apply(filtered)
    data = filtered.to_bytes()
    assert data.count(b"DKIM-Signature:") == 2
    records = records_for(rsa, ed)
    assert verifies(data, records, 0) and verifies(data, records, 1)
    assert b"a=rsa-sha256" in data.split(b"DKIM-Signature:")[1]


async def test_a_changed_body_or_an_added_from_fails_verification(tmp_path: Path) -> None:
    entry = key_entry(new_key(tmp_path, "k.pem", "ed25519"))
    filtered = message(plain("Pay 100 EUR.\n"))
    await signer(entry).apply(filtered)
    data = filtered.to_bytes()
    records = records_for(entry)
    assert verifies(data, records)
    assert not verifies(data.replace(b"Pay 100 EUR.", b"Pay 900 EUR."), records)
    assert not verifies(data.replace(b"Subject:", b"From: evil@bad.test\r\nSubject:"), records)


async def test_signed_headers_are_the_configured_ones_present_with_from_oversigned(
    tmp_path: Path,
) -> None:
    entry = key_entry(new_key(tmp_path, "k.pem", "ed25519"))
    filtered = message(plain(X_Mailer="x", Reply_To="r@company.test"))
    await signer(entry).apply(filtered)
    header = filtered.headers.get("DKIM-Signature") or ""
    tags = dict(t.strip().split("=", 1) for t in header.replace("\r\n", "").split(";"))
    signed = [h.strip() for h in tags["h"].split(":")]
    assert signed == [
        "from", "from", "to", "subject", "reply-to", "mime-version", "content-type",
        "content-transfer-encoding",
    ]  # fmt: skip
    assert tags["c"] == "relaxed/relaxed"


async def test_no_key_for_the_from_domain_passes_unsigned_and_is_counted(tmp_path: Path) -> None:
    entry = key_entry(new_key(tmp_path, "k.pem", "ed25519"))
    before = sample("postline_filter_dkim_messages_total", {"result": "unsigned"})
    filtered = message(plain(From="someone@other.test"))
    decision = await signer(entry).apply(filtered)
    assert decision.reason == "unsigned: no key for the From: domain"
    assert "DKIM-Signature" not in filtered.headers
    assert sample("postline_filter_dkim_messages_total", {"result": "unsigned"}) == before + 1


async def test_a_subdomain_uses_its_parent_key_only_when_subdomains_is_on(tmp_path: Path) -> None:
    entry = key_entry(new_key(tmp_path, "k.pem", "ed25519"))
    mail = plain(From="news@mail.eu.company.test")
    off = message(mail)
    await signer(entry).apply(off)
    assert "DKIM-Signature" not in off.headers
    on = message(mail)
    await signer(entry, subdomains=True).apply(on)
    assert verifies(on.to_bytes(), records_for(entry))
    assert "d=company.test" in (on.headers.get("DKIM-Signature") or "")


@pytest.mark.parametrize(
    ("values", "domain"),
    [
        (["Mary <Mary@Company.TEST>"], "company.test"),
        (["a@x.test, b@x.test"], "x.test"),
        (["a@x.test, b@y.test"], None),
        (["undisclosed"], None),
        ([], None),
    ],
)
def test_the_signing_domain_is_the_one_from_domain(values: list[str], domain: str | None) -> None:
    assert from_domain(values) == domain


async def test_a_replaced_key_file_is_used_from_the_next_check_on(tmp_path: Path) -> None:
    path = new_key(tmp_path, "k.pem", "ed25519")
    entry = key_entry(path)
    filtered = signer(entry, reload_interval=0)
    old_records = records_for(entry)
    replacement = new_key(tmp_path, "new.pem", "ed25519")
    os.replace(replacement, path)  # how a Secret mount rotates: a new file in place
    signed = message(plain())
    await filtered.apply(signed)
    assert not verifies(signed.to_bytes(), old_records)
    assert verifies(signed.to_bytes(), records_for(entry))


async def test_a_key_file_that_stops_parsing_keeps_the_previous_key(tmp_path: Path) -> None:
    path = new_key(tmp_path, "k.pem", "ed25519")
    entry = key_entry(path)
    records = records_for(entry)
    filtered = signer(entry, reload_interval=0)
    errors = sample("postline_filter_dkim_key_loads_total", {"result": "error"})
    path.write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    signed = message(plain())
    await filtered.apply(signed)
    assert verifies(signed.to_bytes(), records)
    assert sample("postline_filter_dkim_key_loads_total", {"result": "error"}) == errors + 1


@pytest.mark.parametrize(
    ("key", "message_part"),
    [
        ("rsa1024", "an RSA key of 1024 bits; at least 2048"),
        ("missing", "No such file"),
        ("junk", "neither PEM nor a base64 Ed25519 seed"),
    ],
)
def test_a_bad_key_stops_the_service_naming_the_filter_and_file(
    tmp_path: Path, key: str, message_part: str
) -> None:
    path = tmp_path / "key.pem"
    if key == "rsa1024":
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
        path.write_bytes(
            weak.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    elif key == "junk":
        path.write_bytes(b"not a key\n")
    chain = settings(chain=["headers", "dkim"], dkim={"keys": [key_entry(path)]})
    with pytest.raises(ConfigError) as caught:
        build_filters(chain)
    text = str(caught.value)
    assert text.startswith("invalid configuration: filter 'dkim': key_file ")
    assert str(path) in text and message_part in text and "\n" not in text


def test_dkim_without_keys_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match="filter 'dkim': no keys"):
        build_filters(settings(chain=["dkim"]))


async def test_a_signed_message_cannot_be_rewritten_by_a_later_filter(tmp_path: Path) -> None:
    entry = key_entry(new_key(tmp_path, "k.pem", "ed25519"))
    filtered = message(plain())
    await signer(entry).apply(filtered)
    with pytest.raises(MessageSealed):
        filtered.replace_body(b"other\r\n")
    with pytest.raises(MessageSealed):
        filtered.headers.remove("Subject")
    filtered.headers.prepend("Received", "by relay.test; Wed, 04 Mar 2026 05:06:07 +0000")
    assert verifies(filtered.to_bytes(), records_for(entry))  # trace fields may still go on top


def test_published_key_matches_the_configured_key_only(tmp_path: Path) -> None:
    entry = key_entry(new_key(tmp_path, "k.pem"))
    other = key_entry(new_key(tmp_path, "other.pem"))
    keys = [DkimKeySettings.model_validate(entry)]
    published = records_for(entry)["s1._domainkey.company.test."]
    assert published_key_matches("company.test", "s1", published, keys)
    assert published_key_matches("Company.Test.", "s1", published.encode(), keys)
    assert not published_key_matches("company.test", "s2", published, keys)
    wrong = records_for(other)["s1._domainkey.company.test."]
    assert not published_key_matches("company.test", "s1", wrong, keys)
    assert not published_key_matches("company.test", "s1", "v=spf1 -all", keys)
    as_ed = published.replace("k=rsa", "k=ed25519")
    assert not published_key_matches("company.test", "s1", as_ed, keys)


def test_dkimpys_own_base64_ed25519_seed_file_is_accepted(tmp_path: Path) -> None:
    import base64

    seed = base64.b64encode(os.urandom(32)) + b"\n"
    algorithm, private, record = parse_key(seed)
    assert algorithm == "ed25519" and private == seed.strip()
    assert record.startswith("v=DKIM1; k=ed25519; p=")


async def test_the_body_as_delivered_with_crlf_still_verifies(tmp_path: Path) -> None:
    """Lines with leading dots, trailing spaces and tabs: the bytes a sink stores."""
    body = ".starts with a dot\n..two dots\ntrailing space \n\tindented\n\n\n"
    entry = key_entry(new_key(tmp_path, "k.pem"))
    filtered = FilterMessage(message(plain()).envelope, crlf_bytes(plain(body)))
    await signer(entry, canonicalization="simple/simple").apply(filtered)
    assert verifies(filtered.to_bytes(), records_for(entry))
