"""The users file: hashed, atomic, 0600, and picked up when it changes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from postline.ingress.address import Mailbox
from postline.ingress.users import PasswordChecker, UserStore, add_user, load_users


def test_add_user_writes_an_argon2_hash_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    add_user(path, "alice", "hunter2", ["Alice@Example.ORG", "@Alice.test"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "hunter2" not in path.read_text()
    alice = load_users(path)["alice"]
    assert alice.password_hash.startswith("$argon2id$")
    assert alice.senders == {"alice@example.org", "@alice.test"}
    assert not list(tmp_path.glob(".users.toml.*")), "temporary file left behind"


def test_updating_a_user_keeps_others_and_senders_unless_given(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    add_user(path, "alice", "one", ["alice@example.org"])
    add_user(path, "bob", "two", ["bob@example.org"])
    before = load_users(path)["alice"].password_hash
    add_user(path, "alice", "three", [])
    users = load_users(path)
    assert users["alice"].password_hash != before
    assert users["alice"].senders == {"alice@example.org"}
    assert set(users) == {"alice", "bob"}


@pytest.mark.parametrize(
    ("name", "password", "senders"),
    [
        ("", "pw", ["a@example.org"]),
        ("has space", "pw", ["a@example.org"]),
        ("alice", "", ["a@example.org"]),
        ("alice", "pw", ["not an address"]),
        ("alice", "pw", []),
    ],
)
def test_add_user_refuses_bad_input(
    tmp_path: Path, name: str, password: str, senders: list[str]
) -> None:
    with pytest.raises(ValueError):
        add_user(tmp_path / "users.toml", name, password, senders)


async def test_store_reloads_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    add_user(path, "alice", "pw", ["alice@example.org"])
    store = UserStore(path)
    assert await store.get("bob") is None
    add_user(path, "bob", "pw", ["bob@example.org"])
    bob = await store.get("bob")
    assert bob is not None and bob.may_send_as(Mailbox("bob", "example.org"))


async def test_store_keeps_the_last_good_users_when_the_file_breaks(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    add_user(path, "alice", "pw", ["alice@example.org"])
    store = UserStore(path)
    assert await store.get("alice") is not None
    path.write_text("[users.alice]\npassword = 'plaintext'\n")
    os.utime(path, ns=(1, 1))
    assert await store.get("alice") is not None
    path.unlink()
    assert await store.get("alice") is None


async def test_password_checker(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    add_user(path, "alice", "right", ["alice@example.org"])
    alice = load_users(path)["alice"]
    checker = PasswordChecker()
    assert await checker.verify(alice, "right")
    assert not await checker.verify(alice, "wrong")
    assert not await checker.verify(None, "right")
