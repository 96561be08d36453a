"""``postline ingress|filter|delivery|audit`` run one service; ``postline run`` all four."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from typing import Any

from postline.app.commands.common import settings_of
from postline.app.settings import Settings, context_for
from postline.lifecycle import Service, Supervisor, run

SERVICES = ("ingress", "filter", "delivery", "audit")


def register(commands: Any) -> None:
    for name in SERVICES:
        parser = commands.add_parser(name, help=f"run the {name} service")
        parser.set_defaults(func=_one, service=name)
    parser = commands.add_parser("run", help="run all four services in one process (local use)")
    parser.set_defaults(func=_all)


def _one(args: argparse.Namespace) -> int:
    return run_services((args.service,), settings_of(args))


def _all(args: argparse.Namespace) -> int:
    return run_services(SERVICES, settings_of(args))


def run_services(names: Sequence[str], settings: Settings) -> int:
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
