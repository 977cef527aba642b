"""The agent's node labels: ``--label KEY=VALUE``, ``NODEWATCH_LABELS`` or a TOML ``labels`` table.

Pure text checks, split from ``agent.config`` (which calls ``labels_from``). The bounds come from
``shared.limits`` because the collector refuses the same things in the hello (docs/protocol.md 5.1).
Not here: the other settings, or sending the labels (``agent.runner``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from agent.errors import ConfigError
from shared.limits import LABEL_KEY_PATTERN, MAX_LABEL_VALUE, MAX_LABELS

_LABEL_KEY = re.compile(LABEL_KEY_PATTERN)
LABELS_ENV = "NODEWATCH_LABELS"


def _label(setting: str, text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    return _checked_label(setting, key, value, text if sep else None)


def _checked_label(setting: str, key: str, value: str, text: str | None) -> tuple[str, str]:
    """``(key, value)`` if both are valid; ``text`` is what the user wrote, None when it had no ``=``."""
    if text is None or not _LABEL_KEY.fullmatch(key) or not 1 <= len(value) <= MAX_LABEL_VALUE:
        raise ConfigError(
            f"{setting}: expected KEY=VALUE, KEY 1-63 letters, digits or _ not starting with a digit,"
            f" VALUE 1-{MAX_LABEL_VALUE} characters, got {text if text is not None else key!r}"
        )
    return key, value


def parse_labels(setting: str, items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    """``KEY=VALUE`` items as label pairs; a ConfigError naming ``setting`` for a bad item, a repeat or too many."""
    return _unique_labels(setting, [_label(setting, item) for item in items])


def _unique_labels(setting: str, pairs: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ConfigError(f"{setting}: expected each label key once, got {', '.join(repeated)} more than once")
    if len(pairs) > MAX_LABELS:
        raise ConfigError(f"{setting}: expected at most {MAX_LABELS} labels, got {len(pairs)}")
    return tuple(pairs)


def labels_from(
    flags: Sequence[str] | None, environ: Mapping[str, str], file_values: Mapping[str, Any]
) -> tuple[tuple[str, str], ...]:
    """The labels of the first source that has any (flags, then environment, then file): one setting, not merged."""
    if flags:
        return parse_labels("--label", flags)
    env_text = environ.get(LABELS_ENV, "")
    if env_text.strip():
        return parse_labels(LABELS_ENV, [item.strip() for item in env_text.split(",") if item.strip()])
    table = file_values.get("labels")
    if table is None:
        return ()
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ConfigError(
            f'labels: expected a TOML table of strings in the config file (labels = {{role = "web"}}), got {table!r}'
        )
    return _unique_labels("labels", [_checked_label("labels", k, v, f"{k}={v}") for k, v in table.items()])
