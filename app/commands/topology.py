"""``postline topology [show|export|declare]``: the RabbitMQ topology of this configuration."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any

import aio_pika

from postline import topology
from postline.app.commands.common import OperationError, settings_of
from postline.app.settings import topology_for


def register(commands: Any) -> None:
    parser = commands.add_parser("topology", help="show, export or declare the RabbitMQ topology")
    parser.add_argument("action", nargs="?", default="show", choices=("show", "export", "declare"))
    parser.set_defaults(func=_topology)


def _topology(args: argparse.Namespace) -> int:
    settings = settings_of(args)
    topo = topology_for(settings)
    if args.action == "show":
        print(topology.describe(topo))
    elif args.action == "export":
        print(json.dumps(topology.to_definitions(topo), indent=2))
    else:
        asyncio.run(_declare(settings.broker.urls, topo))
        print(f"declared {len(topo.queues)} queues in namespace {topo.namespace}")
    return 0


async def _declare(urls: Sequence[str], topo: topology.Topology) -> None:
    """Declare on the first node of ``urls`` that answers (the cluster replicates it)."""
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)  # the one-line error says it all
    errors = []
    for url in urls:
        try:
            connection = await aio_pika.connect(url, timeout=10)
            break
        except Exception as error:
            errors.append(str(error))
    else:
        raise OperationError(f"cannot reach RabbitMQ: {'; '.join(errors)}")
    try:
        await topology.declare(connection, topo)
    except topology.TopologyMismatch as error:
        raise OperationError(str(error)) from None
    finally:
        await connection.close()
