from datetime import UTC, datetime, timedelta


class ManualClock:
    """A clock the test moves: `clock()` is now, `clock.advance(days=…)` moves it."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now
