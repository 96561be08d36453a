"""What the control state says about a message delivery takes from ``deliver``.

``ControlGate.lookup`` answers, for one copy:

* ``duplicate``: a done marker exists for its id, attempt and copy
  (``postline-copy``): this very copy was already handled (the original an
  interrupted flush left behind in its queue). A message without a copy id
  is never a duplicate: that is how filter's fresh publishes (and messages
  queued before copy ids existed) look, and a marker must never drop a live
  message; at worst such a leftover is attempted twice;
* ``action``: the latest operator action on it issued after it was received.

No message is decided before the state has read the whole stream once
(``ControlState.synced``): ``lookup`` waits up to ``sync_timeout`` for that,
then raises ``ControlUnavailable`` (the message is requeued). A copy moved by
the flusher for a request the state has not read yet (the record is still on
its way) waits for the state to catch up (``wait_synced``) before it is
decided, so an action never loses a race against its own flush.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from postline.control import ControlState, OperatorAction
from postline.delivery.operator import effective
from postline.models import Envelope


class ControlUnavailable(RuntimeError):
    """The control stream was not read in time: no message can be decided yet."""


@dataclass(frozen=True)
class Lookup:
    duplicate: bool
    action: OperatorAction | None


class ControlGate:
    """Delivery's questions to a ``ControlState`` that ``run`` keeps up to date."""

    def __init__(self, state: ControlState, sync_timeout: float = 30.0) -> None:
        self.state = state
        self.sync_timeout = sync_timeout

    @property
    def ready(self) -> bool:
        return self.state.synced.is_set()

    async def lookup(
        self, envelope: Envelope, flush: str | None, copy: str | None = None
    ) -> Lookup:
        """The standing of copy ``copy`` moved for request ``flush`` (module docstring).

        ``ControlUnavailable`` when the stream was not read in time.
        """
        if not self.state.synced.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.state.synced.wait(), self.sync_timeout)
            if not self.state.synced.is_set():
                raise ControlUnavailable(
                    f"control stream not read within {self.sync_timeout:g}s; message requeued"
                )
        found = self._lookup(envelope, copy)
        if flush is not None and not found.duplicate and not _for(found.action, flush):
            await self.state.wait_synced(self.sync_timeout)  # its record may be on its way
            found = self._lookup(envelope, copy)
        return Lookup(found.duplicate, effective(found.action, envelope))

    def _lookup(self, envelope: Envelope, copy: str | None) -> Lookup:
        message_id = envelope.message_id
        duplicate = copy is not None and self.state.is_done(message_id, envelope.attempt, copy)
        return Lookup(duplicate, self.state.action_for(message_id))


def _for(action: OperatorAction | None, request_id: str) -> bool:
    return action is not None and action.request_id == request_id
