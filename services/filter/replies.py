"""SMTP replies the filter service records when a filter gives none."""

from __future__ import annotations

from postline.reply import reply

REJECTED = reply(550, "5.7.1", "Message rejected by content filter")
"""Default reply on the rejected event of each recipient of a ``REJECT``ed message."""

HEADER_TOO_LARGE = reply(554, "5.6.0", "Message header section exceeds the filter's limits")
"""Reply on the rejected events of a message whose header section exceeds
``[filter] max_header_size`` or ``max_header_lines``."""

MIME_TOO_COMPLEX = reply(554, "5.6.0", "Message MIME structure exceeds the filter's limits")
"""Reply of a message whose MIME nesting, part count or part headers exceed the limits."""

DEFERRED = reply(451, "4.7.0", "Message deferred by content filter")
"""Default reply on the deferred events of a ``DEFER``ed message."""
