"""Durations, pure: ``"90s"``, ``"5m"``, ``"1h30m"``, ``"2d"`` to seconds and back.

Used by schedules (``every=``, ``grace=``) and by the CLI's duration options.
"""

from __future__ import annotations

import datetime as dt
import math
import re

__all__ = ["format_seconds", "parse_duration"]

_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")


def parse_duration(text: str | float | dt.timedelta) -> float:
    """Seconds in ``text``: ``90``, ``90s``, ``5m``, ``1h30m``, ``2d``, ``1w``, or a timedelta.

    Raises:
        ValueError: not a duration, or not positive.
    """
    if isinstance(text, dt.timedelta):
        seconds = text.total_seconds()
    elif isinstance(text, (int, float)):
        seconds = float(text)
    else:
        compact = text.strip().lower().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", compact):
            seconds = float(compact)
        else:
            pos, seconds = 0, 0.0
            for match in _DURATION.finditer(compact):
                if match.start() != pos or match.group(2) not in _UNITS:
                    raise ValueError(f"invalid duration {text!r}: use e.g. 30s, 5m, 1h30m, 2d")
                seconds += float(match.group(1)) * _UNITS[match.group(2)]
                pos = match.end()
            if pos != len(compact) or not compact:
                raise ValueError(f"invalid duration {text!r}: use e.g. 30s, 5m, 1h30m, 2d")
    if seconds <= 0 or math.isinf(seconds) or math.isnan(seconds):
        raise ValueError(f"a duration must be positive, got {text!r}")
    return seconds


def format_seconds(seconds: float) -> str:
    """``90`` -> ``1m30s``; ``3600`` -> ``1h``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60 and seconds != int(seconds):
        return f"{seconds:.1f}s"
    out, rest = [], round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"
