"""How every benchmark prints its result: the figures, then the ratios (measured in one run)."""

import statistics
from collections.abc import Sequence


def print_result(title: str, figures: Sequence[tuple[str, str]], ratios: Sequence[tuple[str, float, str]] = ()) -> None:
    """`figures`: (label, formatted value); `ratios`: (label, ratio, remark)."""
    width = max(len(label) for label, *_ in [*figures, *ratios])
    print(f"\n{title}")
    for label, value in figures:
        print(f"  {label:<{width}}  {value}")
    for label, ratio, remark in ratios:
        print(f"  {label:<{width}}  ratio {ratio:8.2f}   {remark}".rstrip())


def percentiles(samples: Sequence[float]) -> dict[str, float]:
    """p50, p95 and p99 of `samples` (at least one)."""
    if len(samples) == 1:
        return {"p50": samples[0], "p95": samples[0], "p99": samples[0]}
    cuts = statistics.quantiles(samples, n=100, method="inclusive")
    return {"p50": cuts[49], "p95": cuts[94], "p99": cuts[98]}
