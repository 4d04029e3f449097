"""The benchmarks run and print their ratios (a short variant; no timing is asserted)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "command",
    [
        ["bench.hop", "--messages", "50"],
        ["bench.lifecycle", "--cases", "6"],
        ["bench.growth", "--sizes", "100,1000", "--messages", "30"],
        ["bench.driver", "--operations", "64", "--concurrency", "4"],
        ["bench.scaleout", "--messages", "30"],
        ["bench.lookup", "--sizes", "200,2000", "--lookups", "10"],
    ],
    ids=["hop", "lifecycle", "growth", "driver", "scaleout", "lookup"],
)
def test_benchmark_runs_and_prints_its_ratio(command: list[str], rabbitmq_url: str, mongodb_url: str) -> None:
    environment = {**os.environ, "RABBITMQ_URL": rabbitmq_url, "MONGODB_URL": mongodb_url}
    done = subprocess.run(
        [sys.executable, "-m", *command], cwd=REPO, env=environment, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ratio" in done.stdout, done.stdout[-2000:]
