"""Operator documentation stays true to the code."""

from __future__ import annotations

import re
from pathlib import Path

from postline.app.config_docs import reference_markdown

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_reference_matches_the_settings_models() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    match = re.search(r"<!-- reference:start -->\n(.*)<!-- reference:end -->", text, re.S)
    assert match, "docs/configuration.md lost its reference markers"
    assert match.group(1) == reference_markdown(), (
        "docs/configuration.md is out of date: regenerate the block between the markers "
        "with `postline config reference`"
    )


def test_readme_names_the_two_commands_a_newcomer_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^run:", makefile, re.M) and re.search(r"^test:", makefile, re.M)


def test_docs_links_in_the_readme_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\((docs/[^)#]+)\)", readme):
        assert (ROOT / target).exists(), f"README links to missing {target}"
