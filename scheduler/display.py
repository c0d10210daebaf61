"""How the terminal tables show things: every time in one zone, named in the column header,
and a compact table style that leaves titles room in 80 columns.

Items carry their page's own offset (+06:00 for Almaty, +03:00 for Moscow portals, ...);
shown as written, a copy could seem to precede its original. So every table converts to
one zone: ``PRESSWATCH_TZ`` (an IANA name such as ``UTC`` or ``Europe/Moscow``), by default
Asia/Almaty, the sources' own default zone.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rich import box
from rich.table import Table

from pipelines.store.keys import parse_instant

ZONE_ENV = "PRESSWATCH_TZ"
DEFAULT_ZONE = "Asia/Almaty"  # as crawler.config.Source.timezone
TIME_FORMAT = "%Y-%m-%d %H:%M"
# Below this many columns the tables drop their low-value columns (language, sources list).
NARROW = 100
SOURCE_WIDTH = 13  # "primeminister"; longer source names end in "…"


def display_zone() -> ZoneInfo:
    """The zone the tables show times in; a ValueError names a bad ``PRESSWATCH_TZ``."""
    name = os.environ.get(ZONE_ENV) or DEFAULT_ZONE
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        msg = (
            f"{ZONE_ENV}={name!r} is not a time zone name; use an IANA name such as "
            f"{DEFAULT_ZONE}, Europe/Moscow or UTC"
        )
        raise ValueError(msg) from None


def shown_time(value: str | None, zone: ZoneInfo | None = None, missing: str = "-") -> str:
    """An ISO 8601 time as ``2019-11-18 20:20`` in `zone` (the display zone by default);
    `missing` when there is none. A time without offset is read as UTC, as the store does."""
    if not value:
        return missing
    return f"{parse_instant(value).astimezone(zone or display_zone()):{TIME_FORMAT}}"


def time_header(label: str, zone: ZoneInfo | None = None) -> str:
    """A time column's header on two lines: its label and the zone, ``published\\n(UTC)``."""
    return f"{label}\n({(zone or display_zone()).key})"


def id_width(ids: Iterable[str | None]) -> int:
    """The width of an id column: its longest id whole (ids are what people copy)."""
    return max((len(i) for i in ids if i), default=2)


def compact_table(title: str | None = None, **options: object) -> Table:
    """A table with a rule under its header and no outer frame or column bars: six
    characters a row more for the text than rich's default box."""
    return Table(
        title=title,
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        **options,  # type: ignore[arg-type]
    )
