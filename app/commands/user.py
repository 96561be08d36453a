"""``postline user add NAME --users-file FILE --sender ADDR [--sender @domain]``.

The password comes from standard input when it is not a terminal, else from a
prompt (twice). Without ``--users-file``, ``[ingress] users_file`` of the
configuration is used.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from postline.app.settings import load_settings
from postline.settings import ConfigError


def register(commands: Any) -> None:
    user = commands.add_parser("user", help="manage submission users")
    actions = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="add or update a user (password from stdin or prompt)")
    add.add_argument("name")
    add.add_argument("--users-file", type=Path, help="default: [ingress] users_file")
    add.add_argument(
        "--sender",
        action="append",
        default=[],
        metavar="ADDR_OR_@DOMAIN",
        help="an allowed envelope sender; repeat for more",
    )
    add.set_defaults(func=_user_add)


def _user_add(args: argparse.Namespace) -> int:
    from postline.ingress.users import add_user

    path = args.users_file
    if path is None:
        path = load_settings(args.config).ingress.users_file
    if path is None:
        raise ConfigError("user add: give --users-file or set [ingress] users_file")
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if password != getpass.getpass("again: "):
            raise ConfigError("user add: the passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    add_user(Path(path), args.name, password, args.sender)
    print(f"user {args.name} saved in {path}")
    return 0
