"""SMTP replies the filter service records when a filter gives none."""

from __future__ import annotations

from postline.reply import reply

REJECTED = reply(550, "5.7.1", "Message rejected by content filter")
"""Default reply on the rejected event of each recipient of a ``REJECT``ed message."""
