"""The ``postline`` command: ``postline [--config FILE] COMMAND ...``.

The subcommands live in ``postline.app.commands`` (one module each, listed in
``COMMANDS``). Errors are one clear line on stderr and a non-zero exit: 2 for
a bad configuration or bad arguments, 1 when the command could not do its
job (a command may define other codes, as ``trace`` does).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from postline import __version__
from postline.app.commands import COMMANDS
from postline.app.commands.common import OperationError, UsageError
from postline.app.commands.services import SERVICES
from postline.settings import ConfigError

__all__ = ["SERVICES", "main"]


def parser() -> argparse.ArgumentParser:
    """The whole command line: every module of ``COMMANDS`` adds its subcommands."""
    top = argparse.ArgumentParser(prog="postline", description="Postline outbound mail relay.")
    top.add_argument("--config", metavar="FILE", help="TOML config (default: $POSTLINE_CONFIG)")
    top.add_argument("--version", action="version", version=f"postline {__version__}")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"postline.app.commands.{name}").register(commands)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except (ConfigError, UsageError) as error:
        print(f"postline: {error}", file=sys.stderr)
        return 2
    except (OperationError, OSError, ValueError) as error:
        print(f"postline: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
