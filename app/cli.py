"""The ``postline`` command: ``postline [--config FILE] COMMAND ...``.

Commands: ``ingress``, ``filter``, ``delivery``, ``audit`` run one service;
``run`` runs all four in one process; ``topology show|export|declare``;
``config check|reference``; ``user add``. Errors are one clear line on stderr and a non-zero exit
(2 for configuration errors, 1 otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import importlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import aio_pika

from postline import __version__, topology
from postline.app.settings import Settings, context_for, load_settings, topology_for
from postline.lifecycle import Service, Supervisor, run
from postline.logs import configure_logging
from postline.settings import ConfigError

SERVICES = ("ingress", "filter", "delivery", "audit")


class OperationError(Exception):
    """A command could not do its job; the message is the one line the user sees."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="postline", description="Postline outbound mail relay.")
    parser.add_argument("--config", metavar="FILE", help="TOML config (default: $POSTLINE_CONFIG)")
    parser.add_argument("--version", action="version", version=f"postline {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SERVICES:
        commands.add_parser(name, help=f"run the {name} service")
    commands.add_parser("run", help="run all four services in one process (local use)")
    topo = commands.add_parser("topology", help="show, export or declare the RabbitMQ topology")
    topo.add_argument("action", nargs="?", default="show", choices=("show", "export", "declare"))
    conf = commands.add_parser("config", help="check a configuration or print the reference")
    conf.add_argument("action", nargs="?", default="check", choices=("check", "reference"))
    user = commands.add_parser("user", help="manage submission users")
    user_cmds = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = user_cmds.add_parser("add", help="add or update a user (password from stdin or prompt)")
    add.add_argument("name")
    add.add_argument("--users-file", type=Path, help="default: [ingress] users_file")
    add.add_argument(
        "--sender",
        action="append",
        default=[],
        metavar="ADDR_OR_@DOMAIN",
        help="an allowed envelope sender; repeat for more",
    )
    return parser


def _run_services(names: Sequence[str], settings: Settings) -> int:
    """Run the services ``names`` in this process; only their modules are imported."""
    builders = [importlib.import_module(f"postline.{name}.main").build for name in names]
    sections = [getattr(settings, name) for name in names]
    context = context_for(settings)

    def build(supervisor: Supervisor) -> list[Service]:
        return [
            builder(section, context, supervisor)
            for builder, section in zip(builders, sections, strict=True)
        ]

    grace = max(section.shutdown_grace for section in sections)
    return run(build, [section.metrics_listen for section in sections], grace)


def _topology(action: str, settings: Settings) -> int:
    topo = topology_for(settings)
    if action == "show":
        print(topology.describe(topo))
    elif action == "export":
        print(json.dumps(topology.to_definitions(topo), indent=2))
    else:
        asyncio.run(_declare(settings.broker.url, topo))
        print(f"declared {len(topo.queues)} queues in namespace {topo.namespace}")
    return 0


async def _declare(url: str, topo: topology.Topology) -> None:
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)  # the one-line error says it all
    try:
        connection = await aio_pika.connect(url, timeout=10)
    except Exception as error:
        raise OperationError(f"cannot reach RabbitMQ: {error}") from None
    try:
        await topology.declare(connection, topo)
    except topology.TopologyMismatch as error:
        raise OperationError(str(error)) from None
    finally:
        await connection.close()


def _config(action: str, settings: Settings) -> int:
    from postline.app.config_docs import effective_toml, reference_markdown

    if action == "reference":
        print(reference_markdown(), end="")
        return 0
    from postline.filter.registry import check_chain

    check_chain(settings.filter)  # the one check that imports the filters it names
    print(effective_toml(settings), end="")
    return 0


def _user_add(args: argparse.Namespace, settings: Settings | None) -> int:
    from postline.ingress.users import add_user

    path = args.users_file or (settings.ingress.users_file if settings else None)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "user":
            settings = load_settings(args.config) if (args.config or not args.users_file) else None
            return _user_add(args, settings)
        settings = load_settings(args.config)
        configure_logging(settings.log.level)
        if args.command == "topology":
            return _topology(args.action, settings)
        if args.command == "config":
            return _config(args.action, settings)
        names = SERVICES if args.command == "run" else (args.command,)
        return _run_services(names, settings)
    except ConfigError as error:
        print(f"postline: {error}", file=sys.stderr)
        return 2
    except (OperationError, OSError, ValueError) as error:
        print(f"postline: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
