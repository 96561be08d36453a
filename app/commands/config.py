"""``postline config [check|reference]``: validate a configuration, or print the key reference.

``check`` prints the loaded configuration as TOML with secrets masked, after
the checks a service would make at start: every file the configuration names
exists and is readable (``postline.app.doctor.files``, the same check as
``postline doctor``: one line per file naming its key), and every filter in
``[filter] chain`` is imported and built (DKIM keys readable, patterns valid);
a bad configuration exits 2 naming the key. ``reference`` prints the tables of
docs/configuration.md.
"""

from __future__ import annotations

import argparse
from typing import Any

from postline.app.commands.common import settings_of


def register(commands: Any) -> None:
    parser = commands.add_parser("config", help="check a configuration or print the reference")
    parser.add_argument("action", nargs="?", default="check", choices=("check", "reference"))
    parser.set_defaults(func=_config)


def _config(args: argparse.Namespace) -> int:
    from postline.app.config_docs import effective_toml, reference_markdown

    if args.action == "reference":
        print(reference_markdown(), end="")
        return 0
    settings = settings_of(args)
    from postline.app.doctor.files import unusable_files
    from postline.app.settings import context_for
    from postline.filter.main import resolved
    from postline.filter.registry import build_filters

    unusable_files(settings)
    # The one check that imports the filters [filter] chain names, and builds
    # them as the filter service would (DKIM key files, rule patterns, ...).
    build_filters(resolved(settings.filter, context_for(settings)))
    print(effective_toml(settings), end="")
    return 0
