"""Noticing that files changed: the stamp of a set of files, compared between polls.

Operators and Kubernetes replace files in place (an edited users file, a
certificate cert-manager renewed, a rotated Secret mount), so services poll
and reload when a file's stamp (modification time in ns, size, inode) changes.
A missing file has the stamp ``None``; nothing here raises for one.
"""

from __future__ import annotations

from pathlib import Path

Stamp = tuple[int, int, int] | None


def stamp(path: Path) -> Stamp:
    """``(mtime_ns, size, inode)`` of ``path``, or None if it does not exist."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)


def stamps(*paths: Path) -> tuple[Stamp, ...]:
    """The stamps of ``paths``, in order (for files that only make sense together)."""
    return tuple(stamp(path) for path in paths)
