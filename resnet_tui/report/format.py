"""Number and time formatting shared by the CLI and the dashboard ("—" for a missing value)."""

from __future__ import annotations

import math
import re
import time

# Terminal columns from which progress lines, epoch lines and the dashboard show every field;
# narrower, they drop the least needed ones rather than cut them all.
WIDE = 120


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def percent(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.2%}"


def number(value: float | None, digits: int = 4) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def rate(value: float | None) -> str:
    return "—" if not value else f"{value:,.0f}"


def lr(value: float | None) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.3g}"


def date(timestamp: float | None) -> str:
    return "—" if not timestamp else time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def gigabytes(size: float | None, digits: int = 1) -> str:
    """Bytes in GB (10^9 bytes), without the unit: "10.2"."""
    return "—" if size is None or not math.isfinite(size) else f"{size / 1e9:.{digits}f}"


# A path in a message: absolute or from the home folder, up to a space or a separator after it.
_PATH = re.compile(r"~?/[^\s:;,'\"()]+")


def short_paths(text: str, longest: int) -> str:
    """``text`` with each path longer than ``longest`` characters cut to its last parts
    (``…/test0/no-such.npz``), so a message shown in little room keeps the file's name
    and the reason after it. For display only: logs and error files keep the whole path."""

    def shorten(match: re.Match) -> str:
        path = match.group(0)
        if len(path) <= longest:
            return path
        parts = path.rstrip("/").split("/")
        kept = parts[-1]
        for part in reversed(parts[1:-1]):
            if len(part) + len(kept) + 3 > longest:
                break
            kept = f"{part}/{kept}"
        return f"…/{kept}"

    return _PATH.sub(shorten, text)
