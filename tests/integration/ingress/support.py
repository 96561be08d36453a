"""Helpers for ingress tests: users, a running ingress, the submit queue."""

from __future__ import annotations

from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from postline.app.settings import Settings, topology_for
from postline.ingress.service import IngressService
from postline.ingress.state import Listener
from postline.ingress.users import add_user
from postline.models import ENVELOPE_HEADER, Envelope, Event
from postline.topology import Stage
from postline.values import HostPort

PASSWORD = "correct horse battery staple"


def b64(text: str) -> str:
    return b64encode(text.encode()).decode()


def plain(user: str, password: str, authzid: str = "") -> str:
    """The AUTH PLAIN initial response for ``user``/``password``."""
    return b64(f"{authzid}\0{user}\0{password}")


def make_users(path: Path) -> Path:
    """alice may send as alice@example.org and anyone @alice.test; bob as bob@example.org."""
    add_user(path, "alice", PASSWORD, ["alice@example.org", "@alice.test"])
    add_user(path, "bob", PASSWORD, ["bob@example.org"])
    return path


@dataclass
class Running:
    """An ingress started in the test's event loop."""

    service: IngressService
    settings: Settings

    @property
    def plain(self) -> HostPort:
        return self.service.addresses[Listener.PLAIN][0]

    @property
    def implicit(self) -> HostPort:
        return self.service.addresses[Listener.IMPLICIT_TLS][0]

    @property
    def submit_queue(self) -> str:
        return topology_for(self.settings).queue_name(Stage.SUBMIT)

    async def submitted(self) -> list[tuple[bytes, Envelope]]:
        """Take every message waiting in the submit queue."""
        return await take_all(self.settings.broker.url, self.submit_queue)

    async def events(self) -> list[Event]:
        """Take every event waiting in the events queue."""
        queue = topology_for(self.settings).queue_name(Stage.EVENTS)
        return [
            Event.from_json(body) for body in await take_bodies(self.settings.broker.url, queue)
        ]


async def take_messages(url: str, queue_name: str) -> list[AbstractIncomingMessage]:
    connection = await aio_pika.connect(url, timeout=10)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        taken: list[AbstractIncomingMessage] = []
        while (message := await queue.get(no_ack=True, fail=False)) is not None:
            taken.append(message)
        return taken
    finally:
        await connection.close()


async def take_bodies(url: str, queue_name: str) -> list[bytes]:
    return [message.body for message in await take_messages(url, queue_name)]


async def take_all(url: str, queue_name: str) -> list[tuple[bytes, Envelope]]:
    """Bodies and envelopes of every message waiting in ``queue_name``."""
    taken = []
    for message in await take_messages(url, queue_name):
        raw = (message.headers or {})[ENVELOPE_HEADER]
        assert isinstance(raw, str | bytes)
        taken.append((message.body, Envelope.from_header(raw)))
    return taken
