"""The run date, made once per run: a ``Snapshot`` is midnight UTC of ``as_of``.

Every snapshot table is partitioned by the date's ISO string, histories compare event
timestamps (microseconds since the epoch) with the snapshot's, and Feast stamps rows
with the moment itself. Those three views of one date used to be recomputed from a
string wherever they were needed; a ``Snapshot`` carries all of them:

    >>> s = Snapshot.of("2026-10-29")
    >>> s.iso, s.date(), s.micros
    ('2026-10-29', datetime.date(2026, 10, 29), 1793232000000000)

It is a ``datetime`` (timezone UTC, time 00:00), so code that wants a moment takes it
as one; arithmetic on it (``s + timedelta(days=1)``) gives a plain ``datetime``, a
moment that is not a snapshot until ``Snapshot.of`` makes it one.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property

from vista.core.errors import SettingError
from vista.core.names import PARTITION_COL


class Snapshot(dt.datetime):
    """Midnight UTC of a run date, with its ISO string and epoch microseconds."""

    @classmethod
    def of(cls, value: str | dt.date | dt.datetime) -> Snapshot:
        """The snapshot of ``value``: an ISO date (``2026-10-29``; a longer timestamp
        string is cut to its date), a date, or a datetime (its UTC date)."""
        if isinstance(value, Snapshot):
            return value
        if isinstance(value, str):
            try:
                value = dt.date.fromisoformat(value[:10])
            except ValueError:
                raise SettingError(
                    f"as_of must be a date like 2026-10-29, got {value!r}: pass --as-of YYYY-MM-DD"
                ) from None
        if isinstance(value, dt.datetime):
            value = value.astimezone(dt.UTC).date()
        return cls.combine(value, dt.time(), tzinfo=dt.UTC)

    @cached_property
    def iso(self) -> str:
        """``YYYY-MM-DD``: the value of the snapshot tables' partition column."""
        return self.date().isoformat()

    @cached_property
    def micros(self) -> int:
        """Microseconds since the epoch: the unit of the histories' event timestamps."""
        return int(self.timestamp()) * 1_000_000

    def partition_filter(self, column: str = PARTITION_COL) -> list[tuple[str, str, str]]:
        """The delta-rs filter that reads this date's partition of ``column``."""
        return [(column, "=", self.iso)]

    def moment(self) -> dt.datetime:
        """The same instant as a plain ``datetime``."""
        return dt.datetime.combine(self.date(), dt.time(), tzinfo=dt.UTC)

    def __add__(self, other):
        return self.moment() + other

    __radd__ = __add__

    def __sub__(self, other):
        return self.moment() - (other.moment() if isinstance(other, Snapshot) else other)

    def __reduce__(self):
        return (Snapshot.of, (self.iso,))
