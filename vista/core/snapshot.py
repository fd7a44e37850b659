"""The snapshot a run makes, made once per run: a ``Snapshot`` is a whole hour, UTC.

Every snapshot table is partitioned by the snapshot's ISO string, histories compare
event timestamps (microseconds since the epoch) with the snapshot's, and Feast stamps
rows with the moment itself. Those three views of one instant used to be recomputed from
a string wherever they were needed; a ``Snapshot`` carries all of them:

    >>> s = Snapshot.of("2026-10-29")
    >>> s.iso, s.date(), s.micros
    ('2026-10-29', datetime.date(2026, 10, 29), 1793232000000000)
    >>> Snapshot.of("2026-10-29T02:00Z").iso
    '2026-10-29T02'

A snapshot at midnight keeps the plain date as its partition value, so the lakes of the
daily cadence read as before and a lake may move from daily to 2-hourly snapshots
without a migration; any other hour is ``YYYY-MM-DDTHH`` (ISO 8601 at hour precision:
no ``:`` to escape in a partition folder, and the strings sort as the instants do).
An event at the snapshot instant belongs to the next snapshot.

It is a ``datetime`` (timezone UTC), so code that wants a moment takes it as one;
arithmetic on it (``s + timedelta(days=1)``) gives a plain ``datetime``, a moment that
is not a snapshot until ``Snapshot.of`` makes it one.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property

from vista.core.errors import SettingError
from vista.core.names import PARTITION_COL


class Snapshot(dt.datetime):
    """A whole hour UTC, with its partition string and epoch microseconds."""

    @classmethod
    def of(cls, value: str | dt.date | dt.datetime, every_hours: int = 24) -> Snapshot:
        """The snapshot of ``value``: an ISO date (``2026-10-29``, midnight) or time
        (``2026-10-29T02``, ``2026-10-29T02:00:00+00:00``; no zone means UTC), which must
        be a whole hour; a date; or a datetime, a moment that is floored to the last
        snapshot of an ``every_hours`` cadence (an Airflow logical date, a time now)."""
        if isinstance(value, Snapshot):
            return value
        if isinstance(value, str):
            moment = _parse(value)
            if moment.minute or moment.second or moment.microsecond:
                raise SettingError(
                    f"as_of {value!r} is not a whole hour: snapshots are taken on the hour "
                    f"(UTC); pass --as-of {moment:%Y-%m-%dT%H}"
                )
            return cls._at(moment)
        if isinstance(value, dt.datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
            moment = moment.astimezone(dt.UTC)  # (Airflow's are pendulum datetimes)
            hour = moment.hour - moment.hour % every_hours
            return cls.combine(moment.date(), dt.time(hour), tzinfo=dt.UTC)
        return cls._at(dt.datetime.combine(value, dt.time(), tzinfo=dt.UTC))

    @classmethod
    def _at(cls, moment: dt.datetime) -> Snapshot:
        return cls.combine(moment.date(), dt.time(moment.hour), tzinfo=dt.UTC)

    @cached_property
    def iso(self) -> str:
        """The value of the snapshot tables' partition column: ``YYYY-MM-DD`` at
        midnight, ``YYYY-MM-DDTHH`` at any other hour."""
        day = self.date().isoformat()
        return day if self.hour == 0 else f"{day}T{self.hour:02d}"

    @cached_property
    def micros(self) -> int:
        """Microseconds since the epoch: the unit of the histories' event timestamps."""
        return int(self.timestamp()) * 1_000_000

    @property
    def logical_date(self) -> str:
        """The instant as Airflow takes a logical date (``airflow dags test``)."""
        return self.iso if self.hour == 0 else self.moment().isoformat()

    def partition_filter(self, column: str = PARTITION_COL) -> list[tuple[str, str, str]]:
        """The delta-rs filter that reads this snapshot's partition of ``column``."""
        return [(column, "=", self.iso)]

    def moment(self) -> dt.datetime:
        """The same instant as a plain ``datetime``."""
        return dt.datetime.combine(self.date(), dt.time(self.hour), tzinfo=dt.UTC)

    def aligned(self, every_hours: int) -> bool:
        """Whether this is one of the snapshots of an ``every_hours`` cadence."""
        return self.hour % every_hours == 0

    def __add__(self, other):
        return self.moment() + other

    __radd__ = __add__

    def __sub__(self, other):
        return self.moment() - (other.moment() if isinstance(other, Snapshot) else other)

    def __reduce__(self):
        return (Snapshot.of, (self.iso,))


def snapshots_between(first: Snapshot, last: Snapshot, every_hours: int) -> list[Snapshot]:
    """The snapshots of an ``every_hours`` cadence from ``first`` to ``last``, both
    included, oldest first (``first`` itself even when off the cadence)."""
    step, out, moment = dt.timedelta(hours=every_hours), [], first
    while moment <= last:
        out.append(moment)
        moment = Snapshot.of(moment + step, every_hours)
    return out


def _parse(value: str) -> dt.datetime:
    text = value.strip()
    try:
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), tzinfo=dt.UTC)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise SettingError(
            f"as_of must be a date like 2026-10-29 or an hour like 2026-10-29T02 (UTC), "
            f"got {value!r}: pass --as-of YYYY-MM-DD or YYYY-MM-DDTHH"
        ) from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def check_new_snapshot(
    as_of: Snapshot, every_hours: int, existing: list[str], now: dt.datetime | None = None
) -> None:
    """Refuse, before any work, a snapshot the cadence would never take: one in the
    future, one off the ``every_hours`` cadence, or a new one older than the newest of
    ``existing`` (the snapshots the lake holds; rerunning one of those is fine, and is
    what makes reruns idempotent)."""
    now = now or dt.datetime.now(dt.UTC)
    if as_of.moment() > now:
        raise SettingError(
            f"as_of {as_of.iso} is in the future (now {now:%Y-%m-%dT%H:%M}Z): a snapshot "
            "holds the events before its instant, which have not all happened yet; pass an "
            "earlier --as-of"
        )
    if not as_of.aligned(every_hours):
        raise SettingError(
            f"as_of {as_of.iso} is not on the cadence of snapshots.every_hours={every_hours} "
            f"(every {every_hours} hours from 00:00 UTC): pass --as-of "
            f"{Snapshot.of(as_of.moment(), every_hours).iso} or change snapshots.every_hours"
        )
    latest = max(existing, default=None)
    if latest is not None and as_of.iso < latest and as_of.iso not in existing:
        raise SettingError(
            f"as_of {as_of.iso} is before the last snapshot {latest}: snapshots go forward "
            f"in time; pass --as-of {latest} or later (a snapshot the lake holds may be "
            "rerun), or --full-rebuild to build this one from all events"
        )
