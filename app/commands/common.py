"""What the subcommands share: their errors and reading the configuration.

Errors are one line on stderr and an exit code: ``ConfigError`` (a bad
configuration) and ``UsageError`` (bad arguments) exit 2, ``OperationError``
(the command could not do its job) exits 1.
"""

from __future__ import annotations

import argparse

from postline.app.settings import Settings, load_settings
from postline.logs import configure_logging


class OperationError(Exception):
    """A command could not do its job; the message is the one line the user sees."""


class UsageError(Exception):
    """The arguments make no sense together; the message says why."""


def settings_of(args: argparse.Namespace, *, logs: bool = True) -> Settings:
    """The configuration named by ``--config`` (or ``$POSTLINE_CONFIG``), logging set up."""
    settings = load_settings(args.config)
    if logs:
        configure_logging(settings.log.level)
    return settings
