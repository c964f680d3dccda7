"""The one syntax of a duration, for schedules' intervals and `check --max-age`: a number and a
unit, s, m, h, d or w, parts together (`90s`, `30m`, `12h`, `1d`, `1h30m`). Bounds are the
caller's (a schedule's interval, a cache's max age)."""

from __future__ import annotations

import re

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION = re.compile(r"(?:\d{1,6}[smhdw])+")
PART = re.compile(r"(\d+)([smhdw])")
HELP = "a number and a unit, s, m, h, d or w, parts together (90s, 30m, 12h, 1d, 1h30m)"


def seconds(text: str) -> int | None:
    """The seconds of a duration; None when `text` is not one."""
    text = text.strip()
    if not DURATION.fullmatch(text):
        return None
    return sum(int(number) * UNITS[unit] for number, unit in PART.findall(text))
