"""bench/compare at a tiny size: it runs both systems, prints its tables and a RESULT line.

Not a performance test (no number is checked but "nothing lost"): it keeps the
benchmark script working. Skipped where Postfix's tools are missing or
``postfix start`` cannot run (not root).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.broker import BROKER_URL

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RESULT = re.compile(
    r"^RESULT end_to_end_ratio=(\d+\.\d+) accept_ratio=(\d+\.\d+) lost=(\d+)$", re.MULTILINE
)


def _missing_postfix_tools() -> list[str]:
    tools = ("postfix", "postconf", "smtp-source", "smtp-sink")
    return [t for t in tools if not (shutil.which(t) or shutil.which(t, path="/usr/sbin"))]


@pytest.mark.timeout(120)
def test_compare_prints_both_systems_and_a_result_line_with_nothing_lost() -> None:
    if missing := _missing_postfix_tools():
        pytest.skip(f"{', '.join(missing)} missing (Debian package postfix)")
    if os.geteuid() != 0:
        pytest.skip("postfix start needs root")
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTLINE_")}
    env["POSTLINE_BENCH_BROKER_URL"] = BROKER_URL
    tiny = ["--messages", "40", "--sessions", "4", "--runs", "1", "--stall", "20"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "compare"), *tiny],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    match = RESULT.match(lines[-1])
    assert match is not None, lines[-5:]
    assert float(match.group(1)) > 0 and float(match.group(2)) > 0
    assert int(match.group(3)) == 0
    assert "| postfix | 1 |" in result.stdout and "| postline | 1 |" in result.stdout
