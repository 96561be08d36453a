"""One trail file: durable appends and size-based rotation (blocking; run in a thread).

``append(data)`` returns only after ``data`` is written and ``fsync``ed. When
the file already holds something and ``data`` would take it past
``rotate_size``, the file is rotated first: ``F.log.(keep-1)`` ->
``F.log.keep`` (the oldest is overwritten), ..., ``F.log`` -> ``F.log.1``, and
a new ``F.log`` is started; the directory is fsynced so renames and new files
survive a crash. A batch larger than ``rotate_size`` is written whole.

If a write or fsync fails, the file is truncated back to where the batch
began (best effort) and the error is raised, so a retried batch does not
leave half a copy behind. A lock serialises append, rotate and close.

Several processes must not write one trail directory: rotation assumes a
single writer.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path


class TrailFile:
    """Append-only JSON-lines file with fsync and rotation."""

    def __init__(self, path: Path, rotate_size: int, rotate_keep: int) -> None:
        self.path = path
        self.rotate_size = rotate_size
        self.rotate_keep = rotate_keep
        self.size = 0
        self._fd: int | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        with self._lock:
            self._open()

    def append(self, data: bytes) -> None:
        """Write ``data`` at the end and fsync it (rotating first when due)."""
        with self._lock:
            if self._fd is None:
                self._open()
            if self.size > 0 and self.size + len(data) > self.rotate_size:
                self._rotate()
            assert self._fd is not None
            start = self.size
            try:
                _write_all(self._fd, data)
                os.fsync(self._fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, start)
                    os.fsync(self._fd)
                self.size = _size_or(self._fd, start)
                raise
            self.size = start + len(data)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def rotated(self, number: int) -> Path:
        """Path of rotated file ``number`` (1 is the newest)."""
        return self.path.with_name(f"{self.path.name}.{number}")

    def _open(self) -> None:
        created = not self.path.exists()
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        self._fd = os.open(self.path, flags, 0o640)
        self.size = os.fstat(self._fd).st_size
        if created:
            _fsync_dir(self.path.parent)

    def _rotate(self) -> None:
        assert self._fd is not None
        os.close(self._fd)
        self._fd = None
        try:
            for number in range(self.rotate_keep - 1, 0, -1):
                if self.rotated(number).exists():
                    os.replace(self.rotated(number), self.rotated(number + 1))
            os.replace(self.path, self.rotated(1))
        finally:
            self._open()
        _fsync_dir(self.path.parent)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _size_or(fd: int, default: int) -> int:
    try:
        return os.fstat(fd).st_size
    except OSError:
        return default


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
