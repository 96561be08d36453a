"""The benchmark scripts at a tiny size: each runs and ends with its RESULT line.

Not performance tests (no rate is checked but "more than nothing", and
"nothing lost"): they keep the scripts working. bench/compare is skipped where
Postfix's tools are missing or ``postfix start`` cannot run (not root).
bench/large and bench/soak share bench/scale's code (bench/flat.py,
bench/mail.py) but need minutes.
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
COMPARE = re.compile(r"^RESULT end_to_end_ratio=(\d+\.\d+) accept_ratio=(\d+\.\d+) lost=(\d+)$")
SCALE = re.compile(r"^RESULT scale_1=(\d+\.\d+) scale_2=(\d+\.\d+)$")


def run_bench(script: str, *args: str) -> tuple[str, str]:
    """Run ``bench/<script> args`` against the test broker (exit 0 asserted): its
    stdout and the stdout's last line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTLINE_")}
    env["POSTLINE_BENCH_BROKER_URL"] = BROKER_URL
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=ROOT,
        env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout, result.stdout.strip().splitlines()[-1]


def _missing_postfix_tools() -> list[str]:
    tools = ("postfix", "postconf", "smtp-source", "smtp-sink")
    return [t for t in tools if not (shutil.which(t) or shutil.which(t, path="/usr/sbin"))]


@pytest.mark.timeout(120)
def test_compare_prints_both_systems_and_a_result_line_with_nothing_lost() -> None:
    if missing := _missing_postfix_tools():
        pytest.skip(f"{', '.join(missing)} missing (Debian package postfix)")
    if os.geteuid() != 0:
        pytest.skip("postfix start needs root")
    out, last = run_bench(
        "compare", "--messages", "40", "--sessions", "4", "--runs", "1", "--stall", "20"
    )
    match = COMPARE.match(last)
    assert match is not None, out.splitlines()[-5:]
    assert float(match.group(1)) > 0 and float(match.group(2)) > 0
    assert int(match.group(3)) == 0
    assert "| postfix | 1 |" in out and "| postline | 1 |" in out


@pytest.mark.timeout(120)
def test_scale_prints_a_rate_per_process_count_and_a_result_line_with_nothing_lost() -> None:
    out, last = run_bench("scale", "--messages", "20", "--processes", "1,2", "--stall", "40")
    match = SCALE.match(last)
    assert match is not None, out.splitlines()[-5:]
    assert float(match.group(1)) > 0 and float(match.group(2)) > 0
    assert "| 1 | 20 |" in out and "| 2 | 20 |" in out
    rows = [row for row in out.splitlines() if row.startswith(("| 1 |", "| 2 |"))]
    assert all(row.endswith("| 0 |") for row in rows)
