"""Per-command timeouts default to RFC 5321 section 4.5.3.2, and reach every reply."""

from __future__ import annotations

from postline.delivery.connection import Timeouts
from postline.delivery.main import timeouts_of
from postline.delivery.settings import DeliverySettings


def test_defaults_are_the_rfc_5321_timeouts() -> None:
    settings = DeliverySettings(helo_name="relay.test")
    assert timeouts_of(settings) == Timeouts(
        greeting=300,  # 4.5.3.2.1 initial 220 message: 5 minutes
        command=300,  # EHLO, STARTTLS, AUTH, QUIT: 5 minutes (Postfix)
        mail=300,  # 4.5.3.2.2 MAIL: 5 minutes
        rcpt=300,  # 4.5.3.2.3 RCPT: 5 minutes
        data_init=120,  # 4.5.3.2.4 DATA initiation: 2 minutes
        data_block=180,  # 4.5.3.2.5 data block: 3 minutes
        data_done=600,  # 4.5.3.2.6 DATA termination: 10 minutes
        rset=10,  # short: a reused session that does not answer is replaced
    )
    assert Timeouts() == timeouts_of(settings)


def test_attempt_cap_by_default_outlasts_the_wait_after_the_final_dot() -> None:
    settings = DeliverySettings(helo_name="relay.test")
    assert settings.attempt_timeout > settings.data_done_timeout + settings.connect_timeout


def test_each_timeout_is_a_setting_and_command_timeout_still_works() -> None:
    settings = DeliverySettings.model_validate(
        {
            "helo_name": "relay.test",
            "greeting_timeout": "1s",
            "command_timeout": "2s",
            "mail_timeout": "3s",
            "rcpt_timeout": "4s",
            "data_init_timeout": "5s",
            "data_block_timeout": "6s",
            "data_done_timeout": "7s",
            "rset_timeout": "8s",
        }
    )
    assert timeouts_of(settings) == Timeouts(1, 2, 3, 4, 5, 6, 7, 8)
