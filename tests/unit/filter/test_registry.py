"""The registry: built-ins, the postline.filters entry points, and the checks made at start."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from postline.app.settings import Settings
from postline.filter.api import Decision, Verdict
from postline.filter.registry import BUILTINS, build_filters, check_chain, resolve
from postline.settings import ConfigError
from tests.unit.filter.helpers import settings

PLUGIN = """
from postline.filter.api import Decision


class Stamp:
    name = "stamp"

    def __init__(self, settings):
        self.options = settings.plugins.get("stamp", {})

    async def apply(self, message):
        message.headers.append("X-Stamp", self.options.get("value", "none"))
        return Decision.proceed()
"""


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution on sys.path that registers ``stamp`` in ``postline.filters``."""
    (tmp_path / "stamp_plugin.py").write_text(PLUGIN)
    info = tmp_path / "stamp_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: stamp-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent("""\
            [postline.filters]
            stamp = stamp_plugin:Stamp
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))


def test_every_builtin_resolves_to_a_factory() -> None:
    for name in BUILTINS:
        assert callable(resolve(name)), name


def test_a_filter_of_another_package_loads_by_its_entry_point_name(installed_plugin: None) -> None:
    [made] = build_filters(settings(chain=["stamp"], plugins={"stamp": {"value": "v1"}}))
    assert made.name == "stamp" and vars(made)["options"] == {"value": "v1"}


def test_an_unknown_name_is_one_line_naming_the_entry_and_the_ways_to_spell_one() -> None:
    with pytest.raises(ConfigError) as caught:
        check_chain(settings(chain=["headers", "spamassassin"]))
    text = str(caught.value)
    assert "\n" not in text
    assert text.startswith("invalid configuration: filter.chain: unknown filter 'spamassassin'")
    assert "'postline.filters' entry points" in text and "package.module:factory" in text


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"dkim": {"keys": [{"domain": "x.test", "selector": "s 1", "key_file": "/k"}]}},
         "filter.dkim.keys.0.selector"),
        ({"rules": {"rule": [{"on": "subject", "contains": "x", "reason": "r"}]}},
         "filter.rules.rule.0.on"),
        ({"rules": {"rule": [{"on": "sender", "reason": "r"}]}}, "filter.rules.rule.0"),
        ({"attachments": {"reply": "250 ok"}}, "filter.attachments.reply"),
        ({"clamav": {"on_error": "ignore"}}, "filter.clamav.on_error"),
        ({"rspamd": {"unknown": 1}}, "filter.rspamd.unknown"),
        ({"dkimm": {}}, "filter.dkimm"),
    ],
)  # fmt: skip
def test_a_bad_filter_setting_names_its_key(section: dict[str, Any], key: str) -> None:
    from postline.settings import describe_errors

    with pytest.raises(ValidationError) as caught:
        Settings.model_validate({"filter": section})
    assert f"  {key}: " in describe_errors(caught.value, None)


def test_a_filter_that_rewrites_after_dkim_is_refused_naming_it() -> None:
    with pytest.raises(ConfigError) as caught:
        check_chain(settings(chain=["headers", "dkim", "disclaimer"]))
    assert str(caught.value) == (
        "invalid configuration: filter.chain: filter 'disclaimer' changes the message after "
        "'dkim' signed it, which breaks the signature; list it before 'dkim'"
    )


def test_a_setting_that_makes_a_filter_rewrite_is_checked_on_the_built_filter(
    tmp_path: Path,
) -> None:
    from postline.filter.dkim_keys import generate

    key = tmp_path / "k.pem"
    key.write_bytes(generate("ed25519")[0])
    keys = {"keys": [{"domain": "company.test", "selector": "s1", "key_file": str(key)}]}
    ok = settings(chain=["dkim", "headers"], dkim=keys)  # adding Received after is fine
    assert [f.name for f in build_filters(ok)] == ["dkim", "headers"]
    removing = settings(chain=["dkim", "headers"], dkim=keys, headers={"remove": ["X-Id"]})
    with pytest.raises(ConfigError, match="filter 'headers' changes the message after 'dkim'"):
        build_filters(removing)


def test_a_bad_rule_regex_stops_the_service_naming_the_rule() -> None:
    rule = {"on": "text", "regex": "(a)\\1", "reason": "echo"}
    with pytest.raises(ConfigError) as caught:
        build_filters(settings(chain=["rules"], rules={"rule": [rule]}))
    assert str(caught.value).startswith(
        "invalid configuration: filter 'rules': [[filter.rules.rule]] 1 ('echo'): regex refused "
        "by RE2: invalid escape sequence"
    )


def test_discard_is_a_verdict_without_a_reply() -> None:
    decision = Decision.discard("newsletter to a dead list")
    assert decision.verdict is Verdict.DISCARD and decision.reply is None
    from postline.reply import reply

    with pytest.raises(ValueError, match="discard takes no reply"):
        Decision(Verdict.DISCARD, "x", reply(550, "5.7.1", "no"))
