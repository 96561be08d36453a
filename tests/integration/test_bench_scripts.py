"""bench/scale at a tiny size: it runs 1 and 2 delivery processes and prints its RESULT line.

Not a performance test (no rate is checked but "more than nothing" and
"nothing lost"): it keeps the benchmark script working. bench/large and
bench/soak share its code (bench/flat.py, bench/mail.py) but need minutes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.broker import BROKER_URL

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RESULT = re.compile(r"^RESULT scale_1=(\d+\.\d+) scale_2=(\d+\.\d+)$", re.MULTILINE)


@pytest.mark.timeout(120)
def test_scale_prints_a_rate_per_process_count_and_a_result_line_with_nothing_lost() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("POSTLINE_")}
    env["POSTLINE_BENCH_BROKER_URL"] = BROKER_URL
    tiny = ["--messages", "20", "--processes", "1,2", "--stall", "40"]
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "scale"), *tiny],
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
    assert "| 1 | 20 |" in result.stdout and "| 2 | 20 |" in result.stdout
    assert all(row.endswith("| 0 |") for row in lines if row.startswith(("| 1 |", "| 2 |")))
