"""One trail file: fsynced appends, rotation by size, no half batch after a failed write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from postline.audit.trailfile import TrailFile


def line(n: int, width: int = 40) -> bytes:
    text = f'{{"n":{n}}}'
    return text.ljust(width - 1).encode() + b"\n"


def test_appends_accumulate_and_an_existing_file_is_continued(tmp_path: Path) -> None:
    path = tmp_path / "SmtpQueue.log"
    first = TrailFile(path, rotate_size=10_000, rotate_keep=3)
    first.open()
    first.append(line(1) + line(2))
    first.close()
    again = TrailFile(path, rotate_size=10_000, rotate_keep=3)
    again.open()
    assert again.size == 80
    again.append(line(3))
    again.close()
    assert path.read_bytes() == line(1) + line(2) + line(3)


def test_rotation_by_size_shifts_numbered_files_and_keeps_only_rotate_keep(
    tmp_path: Path,
) -> None:
    path = tmp_path / "OutboundAuditTrailSuccess.log"
    trail = TrailFile(path, rotate_size=100, rotate_keep=2)
    trail.open()
    for n in range(1, 8):  # 40-byte lines: two fit in 100 bytes
        trail.append(line(n))
    trail.close()
    assert path.read_bytes() == line(7)
    assert trail.rotated(1).read_bytes() == line(5) + line(6)
    assert trail.rotated(2).read_bytes() == line(3) + line(4)
    assert not trail.rotated(3).exists()  # lines 1 and 2 rotated away


def test_a_batch_larger_than_rotate_size_is_written_whole(tmp_path: Path) -> None:
    path = tmp_path / "SmtpQueue.log"
    trail = TrailFile(path, rotate_size=50, rotate_keep=1)
    trail.open()
    trail.append(line(1))
    big = b"".join(line(n) for n in range(2, 6))
    trail.append(big)
    trail.close()
    assert path.read_bytes() == big
    assert trail.rotated(1).read_bytes() == line(1)


def test_failed_fsync_truncates_the_batch_so_a_retry_does_not_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "SmtpQueue.log"
    trail = TrailFile(path, rotate_size=10_000, rotate_keep=1)
    trail.open()
    trail.append(line(1))
    real_fsync = os.fsync
    failures = [OSError(5, "Input/output error")]

    def flaky_fsync(fd: int) -> None:
        if failures:
            raise failures.pop()
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", flaky_fsync)
    with pytest.raises(OSError):
        trail.append(line(2))
    assert trail.size == 40 and path.read_bytes() == line(1)
    trail.append(line(2))  # the retry
    trail.close()
    assert path.read_bytes() == line(1) + line(2)


def test_new_file_is_created_private_to_group(tmp_path: Path) -> None:
    trail = TrailFile(tmp_path / "SMTPOutboundConversation.log", 100, 1)
    trail.open()
    trail.close()
    mode = (tmp_path / "SMTPOutboundConversation.log").stat().st_mode & 0o777
    assert mode & 0o007 == 0
