"""Where the database time went, from the services' `database time` log lines.

    python scripts/database_time.py LOG_DIR [--windows 4] [--top 18]

Reads every *.log in LOG_DIR (JSON lines, as the fault runs write them with
KRING_DATABASE_TIME_SECONDS set), adds up calls and seconds per service, command and
collection, and shows how the calls and their average time changed over the run, in equal
windows of time: a command whose time grows with the data shows up there.
"""

import argparse
import json
import re
import sys
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

FIGURES = re.compile(r"(\d+) calls, ([\d.]+) s")


class Sample(NamedTuple):
    at: float
    what: tuple[str, str]  # service, "command collection"
    calls: int
    seconds: float


def samples(log_dir: Path) -> list[Sample]:
    found = []
    for log in sorted(log_dir.glob("*.log")):
        for line in log.read_text(errors="replace").splitlines():
            if '"database time"' not in line:
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            at = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
            for name, value in entry.items():
                if (figures := FIGURES.match(str(value))) is not None:
                    found.append(Sample(at, (entry["service"], name), int(figures[1]), float(figures[2])))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("log_dir", type=Path)
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--top", type=int, default=18)
    args = parser.parse_args(argv)
    found = samples(args.log_dir)
    if not found:
        print(f"no 'database time' lines in {args.log_dir}/*.log (is KRING_DATABASE_TIME_SECONDS set?)", file=sys.stderr)
        return 1
    seconds: Counter[tuple[str, str]] = Counter()
    calls: Counter[tuple[str, str]] = Counter()
    for sample in found:
        seconds[sample.what] += sample.seconds
        calls[sample.what] += sample.calls
    total = sum(seconds.values())
    start, end = min(s.at for s in found), max(s.at for s in found)
    width = (end - start) / args.windows or 1
    print(f"database time in {args.log_dir}: {total:.0f} s over {end - start:.0f} s of run, in {sum(calls.values())} calls")
    print(f"{'service':11} {'command collection':34} {'calls':>7} {'seconds':>8} {'share':>6}  " + "  ".join(f"{f'window {n + 1}':>16}" for n in range(args.windows)))
    for what, spent in seconds.most_common(args.top):
        windows = []
        for n in range(args.windows):
            inside = [s for s in found if s.what == what and min(int((s.at - start) / width), args.windows - 1) == n]
            count = sum(s.calls for s in inside)
            windows.append(f"{count:>7} × {1000 * sum(s.seconds for s in inside) / count if count else 0:5.1f} ms")
        print(f"{what[0]:11} {what[1]:34} {calls[what]:>7} {spent:>8.1f} {spent / total:>6.1%}  " + "  ".join(windows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
