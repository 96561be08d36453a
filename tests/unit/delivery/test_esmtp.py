"""What a transaction sends depends on what the server announced."""

from __future__ import annotations

from dataclasses import dataclass, field

from postline.delivery.esmtp import Wire, negotiate
from postline.models import RecipientParams
from postline.reply import SmtpReply

BODY = b"Subject: hi\r\n\r\nhello\r\n"


@dataclass
class Server:
    extensions: tuple[str, ...]
    esmtp_extensions: dict[str, str] = field(default_factory=dict)

    def supports_extension(self, extension: str) -> bool:
        return extension.lower() in self.extensions


@dataclass
class Tx:
    mail_from: str = "a@example.org"
    recipients: list[str] = field(default_factory=lambda: ["b@x.test"])
    body: bytes = BODY
    smtputf8: bool = False
    ret: str | None = None
    envid: str | None = None
    rcpt_params: dict[str, RecipientParams] = field(default_factory=dict)


async def wire(tx: Tx, *extensions: str, size: str = "") -> Wire | SmtpReply:
    return await negotiate(tx, Server(extensions, {"size": size} if size else {}))


async def test_size_is_announced_and_enforced() -> None:
    sent = await wire(Tx(), "size", size="1000")
    assert isinstance(sent, Wire) and sent.mail_options == [f"SIZE={len(BODY)}"]
    refused = await wire(Tx(), "size", size="5")
    assert isinstance(refused, SmtpReply) and refused.enhanced == "5.3.4"


async def test_dsn_parameters_go_only_to_a_dsn_server() -> None:
    params = {"b@x.test": RecipientParams(notify=("NEVER",), orcpt="utf-8;jörg@old.test")}
    tx = Tx(ret="FULL", envid="id=1", rcpt_params=params)
    plain = await wire(tx)
    assert isinstance(plain, Wire) and not plain.dsn
    assert plain.mail_options == [] and plain.rcpt_to == {"b@x.test": "<b@x.test>"}
    dsn = await wire(tx, "dsn")
    assert isinstance(dsn, Wire) and dsn.dsn
    assert dsn.mail_options == ["RET=FULL", "ENVID=id+3D1"]
    assert dsn.rcpt_to["b@x.test"] == "<b@x.test> NOTIFY=NEVER ORCPT=utf-8;j\\x{F6}rg@old.test"


async def test_a_non_ascii_local_part_needs_smtputf8() -> None:
    refused = await wire(Tx(recipients=["jörg@x.test"], smtputf8=True), "8bitmime")
    assert isinstance(refused, SmtpReply) and refused.enhanced == "5.6.7"
    sent = await wire(Tx(recipients=["jörg@x.test"], smtputf8=True), "smtputf8")
    assert isinstance(sent, Wire) and sent.mail_options == ["SMTPUTF8"]
