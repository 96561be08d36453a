"""RFC 3461 DSN parameters of MAIL and RCPT, decoded: RET and ENVID, NOTIFY and ORCPT.

``mail_dsn(params)`` takes RET and ENVID out of a MAIL command's parameters;
``rcpt_dsn(params, smtputf8)`` reads NOTIFY and ORCPT, the only parameters RCPT
accepts (anything else is ``555``). Each returns the decoded values or the
``501 5.5.4`` reply for a malformed one (RFC 3461 5.1, 5.2). xtext is decoded;
ORCPT keeps its address type (``rfc822;a@b``, or RFC 6533 ``utf-8;...``). Pure
functions.
"""

from __future__ import annotations

import re
from typing import Literal

from postline.dsn import xtext_decode
from postline.ingress import replies
from postline.models import RecipientParams
from postline.reply import SmtpReply

_ADDR_TYPE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,19}$")
_UTF8_ESCAPE = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")
Notify = Literal["NEVER", "SUCCESS", "FAILURE", "DELAY"]
_NOTIFY: dict[str, Notify] = {"SUCCESS": "SUCCESS", "FAILURE": "FAILURE", "DELAY": "DELAY"}


def mail_dsn(
    params: dict[str, str | None],
) -> tuple[Literal["FULL", "HDRS"] | None, str | None] | SmtpReply:
    """RET and ENVID taken out of ``params`` and decoded (RFC 3461 4.3, 4.4)."""
    has_ret, has_envid = "RET" in params, "ENVID" in params
    ret_text, envid_text = params.pop("RET", None), params.pop("ENVID", None)
    ret: Literal["FULL", "HDRS"] | None = None
    if has_ret:
        upper = (ret_text or "").upper()
        if upper != "FULL" and upper != "HDRS":
            return replies.BAD_RET
        ret = "FULL" if upper == "FULL" else "HDRS"
    envid: str | None = None
    if has_envid:
        try:
            envid = xtext_decode(envid_text or "")
        except ValueError:
            return replies.BAD_ENVID
        if not envid or len(envid) > 100 or not all(32 <= ord(c) <= 126 for c in envid):
            return replies.BAD_ENVID
    return ret, envid


def rcpt_dsn(params: dict[str, str | None], smtputf8: bool) -> RecipientParams | SmtpReply | None:
    """NOTIFY and ORCPT of one RCPT (RFC 3461 4.1, 4.2); anything else is ``555``."""
    notify_text, orcpt_text = params.pop("NOTIFY", ""), params.pop("ORCPT", "")
    if params:
        return replies.UNKNOWN_PARAMETER
    if notify_text == "" and orcpt_text == "":
        return None
    notify: tuple[Notify, ...] | None = None
    if notify_text != "":
        words = (notify_text or "").upper().split(",")
        if words == ["NEVER"]:
            notify = ("NEVER",)
        elif all(w in _NOTIFY for w in words) and len(set(words)) == len(words):
            notify = tuple(_NOTIFY[w] for w in words)
        else:
            return replies.BAD_NOTIFY
    orcpt = None
    if orcpt_text != "":
        orcpt = _orcpt(orcpt_text or "", smtputf8)
        if orcpt is None:
            return replies.BAD_ORCPT
    return RecipientParams(notify=notify, orcpt=orcpt)


def _orcpt(value: str, smtputf8: bool) -> str | None:
    """``rfc822;a+2Bb@x`` -> ``rfc822;a+b@x``; utf-8-addr (RFC 6533) too; None if malformed."""
    kind, semi, text = value.partition(";")
    if not semi or not text or not _ADDR_TYPE.match(kind):
        return None
    kind = kind.lower()
    if not text.isascii() and not (kind == "utf-8" and smtputf8):
        return None
    try:
        address = xtext_decode(text) if text.isascii() else text
    except ValueError:
        return None
    if kind == "utf-8":
        address = _UTF8_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), address)
    if len(address) > 500 or not address.isprintable():
        return None
    return f"{kind};{address}"
