"""Pure formatting for people: bytes, rates, durations, ages, percentages, clock times, tooltips.

Not here: colours, fonts or anything Qt; the model decides where each string goes.
An absent value (``None``) means "not measured" and is shown as an empty cell, never 0.
Units are IEC (KiB, MiB) everywhere: table, pane and chart axes.
"""

from __future__ import annotations

import html
import time
from collections.abc import Mapping, Sequence

# IEC binary prefixes: memory and disk sizes are powers of two on every OS we sample.
_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_KIB = 1024.0


def format_bytes(value: float | None) -> str:
    """Return ``value`` bytes as e.g. ``'1.5 GiB'``; three significant digits are enough at a glance."""
    if value is None:
        return ""
    size = float(value)
    for unit in _BYTE_UNITS[:-1]:
        if abs(size) < _KIB:
            return f"{size:.0f} {unit}" if unit == "B" else f"{_three_digits(size)} {unit}"
        size /= _KIB
    return f"{_three_digits(size)} {_BYTE_UNITS[-1]}"


def _three_digits(size: float) -> str:
    # 1000-1023 of a unit: ".3g" would write "1e+03"; whole numbers read better there.
    return f"{size:.0f}" if abs(size) >= 999.5 else f"{size:.3g}"


def format_rate(bytes_per_s: float | None) -> str:
    """Return a byte rate as e.g. ``'12.3 KiB/s'``."""
    if bytes_per_s is None:
        return ""
    return format_bytes(bytes_per_s) + "/s"


def format_rx_tx(rx_bytes_per_s: float | None, tx_bytes_per_s: float | None) -> str:
    """Return ``'rx ↓ / tx ↑'``; a side that was not measured shows as "-"."""
    if rx_bytes_per_s is None and tx_bytes_per_s is None:
        return ""
    rx = format_rate(rx_bytes_per_s) or "-"
    tx = format_rate(tx_bytes_per_s) or "-"
    return f"↓ {rx}  ↑ {tx}"


def format_percent(value: float | None) -> str:
    """Return a 0-100 value as ``'42.0 %'``."""
    return "" if value is None else f"{value:.1f} %"


def format_duration(seconds: float | None) -> str:
    """Return an uptime as ``'3 d 4 h'``, ``'4 h 05 m'``, ``'5 m 07 s'`` or ``'7 s'``: two units at most."""
    if seconds is None:
        return ""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes:02d} m"
    if minutes:
        return f"{minutes} m {secs:02d} s"
    return f"{secs} s"


def format_age(age_s: float | None) -> str:
    """Return how long ago something was seen: ``'3 s ago'``, ``'2 m ago'``; a future instant is 'just now'."""
    if age_s is None:
        return "never"
    if age_s < 1.0:
        return "just now"
    if age_s < 60.0:
        return f"{int(age_s)} s ago"
    if age_s < 3_600.0:
        return f"{int(age_s // 60)} m ago"
    if age_s < 86_400.0:
        return f"{int(age_s // 3_600)} h ago"
    return f"{int(age_s // 86_400)} d ago"


def format_load(load_avg: Sequence[float] | None) -> str:
    """Return the 1/5/15-minute load averages as ``'0.52 0.40 0.31'``."""
    if not load_avg:
        return ""
    return " ".join(f"{value:.2f}" for value in load_avg)


def disk_fullness(values: Sequence[int]) -> float | None:
    """Used fraction (0-1) of one disk: ``[total, used, available]`` like df (used / (used + available)),
    or ``[total, used]`` as used / total; None when it cannot be told (a zero size)."""
    if len(values) >= 3:
        used, available = values[1], values[2]
        return None if used + available <= 0 else min(1.0, used / (used + available))
    total, used = values[0], values[1]
    return None if total <= 0 else min(1.0, used / total)


def _fullest(disks: Mapping[str, Sequence[int]] | None) -> tuple[float, str] | None:
    best: tuple[float, str] | None = None
    for mount, values in (disks or {}).items():
        fullness = disk_fullness(values)
        if fullness is not None and (best is None or fullness > best[0]):
            best = (fullness, mount)
    return best


def fullest_disk_percent(disks: Mapping[str, Sequence[int]] | None) -> float | None:
    """Return the used percentage of the fullest disk, or None if no disk was measured (or all are empty)."""
    best = _fullest(disks)
    return None if best is None else 100.0 * best[0]


def fullest_disk_name(disks: Mapping[str, Sequence[int]] | None) -> str | None:
    """Return the mount point of the fullest disk, for a tooltip."""
    best = _fullest(disks)
    return None if best is None else best[1]


def format_clock(epoch_s: float | None, localtime: bool = True) -> str:
    """Return a wall-clock instant as ``'HH:MM:SS'`` (local time), or '' when unknown."""
    if epoch_s is None:
        return ""
    moment = time.localtime(epoch_s) if localtime else time.gmtime(epoch_s)
    return time.strftime("%H:%M:%S", moment)


def plain_tooltip(text: str | None) -> str | None:
    """Return ``text`` so that a Qt tooltip shows it literally: peer strings are data, never markup.

    A QToolTip renders anything that ``Qt.mightBeRichText`` calls rich, so the text is
    escaped and wrapped in one paragraph of our own (``white-space: pre`` keeps its spaces).
    """
    if not text:
        return None
    return "<p style='white-space:pre'>" + html.escape(text, quote=False) + "</p>"
