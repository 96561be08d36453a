"""Files the configuration names (shared by ``doctor`` and ``config check``), and the users file."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher

from postline.app.doctor.files import file_checks, named_files, unusable_files
from postline.app.doctor.report import Status
from postline.app.doctor.users import users_checks, valid_hash
from postline.app.settings import Settings
from postline.ingress.users import add_user
from postline.settings import ConfigError


def settings(tmp_path: Path, **ingress: str) -> Settings:
    key = tmp_path / "dkim.pem"
    return Settings.model_validate(
        {
            "ingress": ingress,
            "filter": {"dkim": {"keys": [{"domain": "a.test", "selector": "s1", "key_file": key}]}},
            "audit": {"api_tokens_file": str(tmp_path / "tokens")},
            "delivery": {"tls_ca_file": str(tmp_path / "ca.pem")},
        }
    )


def test_every_named_file_is_listed_with_its_key(tmp_path: Path) -> None:
    cert = str(tmp_path / "cert.pem")
    keys = [f.key for f in named_files(settings(tmp_path, tls_cert=cert, tls_key=cert))]
    assert keys == [
        "ingress.tls_cert",
        "ingress.tls_key",
        "filter.dkim.keys[0].key_file",
        "audit.api_tokens_file",
        "delivery.tls_ca_file",
    ]


def test_a_missing_file_fails_its_line_and_a_readable_one_passes(tmp_path: Path) -> None:
    (tmp_path / "tokens").write_text("x" * 20)
    (tmp_path / "ca.pem").mkdir()
    checks = {c.check: c for c in file_checks(settings(tmp_path))}
    assert checks["file audit.api_tokens_file"].status is Status.PASS
    assert checks["file filter.dkim.keys[0].key_file"].status is Status.FAIL
    assert "does not exist" in checks["file filter.dkim.keys[0].key_file"].found
    assert "not a regular file" in checks["file delivery.tls_ca_file"].found


def test_config_check_names_the_key_and_the_file_of_one_missing_file(tmp_path: Path) -> None:
    for name in ("dkim.pem", "tokens", "ca.pem", "key.pem"):
        (tmp_path / name).write_text("x")
    cert = tmp_path / "cert.pem"
    config = settings(tmp_path, tls_cert=str(cert), tls_key=str(tmp_path / "key.pem"))
    with pytest.raises(ConfigError) as raised:
        unusable_files(config)
    assert str(raised.value) == f"ingress.tls_cert: file {cert} does not exist"


def test_nothing_named_nothing_checked() -> None:
    unusable_files(Settings())
    assert file_checks(Settings()) == []


def test_argon2_hashes_are_checked_beyond_their_prefix() -> None:
    good = PasswordHasher().hash("secret")
    assert valid_hash(good)
    assert not valid_hash(good[:-5] + "!!!!!")
    assert not valid_hash(good[:-30])
    assert not valid_hash("$argon2id$v=19$m=65536,t=3,p=4$nonsense")


def test_a_users_file_with_a_broken_hash_fails_naming_the_user(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    add_user(path, "alice", "secret", ["alice@a.test"])
    assert [c.status for c in users_checks(path)] == [Status.PASS]
    truncated = PasswordHasher().hash("secret")[:-30]
    with path.open("a") as users:
        users.write(f'[users.bob]\npassword = "{truncated}"\nsenders = ["bob@a.test"]\n')
    [check] = users_checks(path)
    assert check.status is Status.FAIL
    assert "invalid password hash for bob" in check.found


def test_a_world_readable_users_file_warns(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    add_user(path, "alice", "secret", ["alice@a.test"])
    path.chmod(0o644)
    [check] = users_checks(path)
    assert check.status is Status.WARN and "chmod 600" in check.advice


def test_a_users_file_that_does_not_parse_fails(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    path.write_text("[users.bob]\npassword = 'plaintext'\n")
    [check] = users_checks(path)
    assert check.status is Status.FAIL and "not an argon2 hash" in check.found
