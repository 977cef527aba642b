"""The collector's alert messages as the viewer reads them: ``alerts`` (5.11) and ``alert`` (5.12).

``shared.codec`` decodes only the pydantic messages of docs/protocol.md; these two are plain
maps sent only to a subscriber that asked with ``?alerts=1``, so the viewer checks them here,
after ``decode`` said ``unknown_type``: only alert frames (at most one per 100 ms flush) and
bad frames pay for the second look. Every failure is a ``ProtocolError``, as from ``decode``.

Not here: which alerts are live (``viewer.alertbook``), widgets, or sockets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final, Literal

import msgpack
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from shared.errors import ErrorReason, ProtocolError
from shared.limits import NODE_ID_MAX_LEN, NODE_ID_PATTERN

# The subscribe query that asks for the alert messages (docs/protocol.md 4, item 7); an older collector ignores it.
ALERTS_QUERY: Final = "?alerts=1"
# docs/protocol.md 5.11: each message carries at most 10,000 alerts (more come in further messages).
MAX_ALERTS_PER_MESSAGE: Final = 10_000
# A rule's summary is the operator's config text; a longer one is a broken collector, not a summary.
MAX_SUMMARY_CHARS: Final = 1024
# Mounts, sensors and interfaces are short strings on the wire (docs/protocol.md 5: at most 256).
MAX_INSTANCE_CHARS: Final = 256

AlertName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
NodeId = Annotated[str, Field(min_length=1, max_length=NODE_ID_MAX_LEN, pattern=NODE_ID_PATTERN)]
Severity = Literal["info", "warning", "critical"]
LiveState = Literal["pending", "firing", "unknown"]
Summary = Annotated[str, Field(max_length=MAX_SUMMARY_CHARS)]
Instance = Annotated[str, Field(max_length=MAX_INSTANCE_CHARS)]


class _Map(BaseModel):
    # A newer collector may add keys to these plain maps; what the viewer shows is checked.
    model_config = ConfigDict(frozen=True, extra="ignore")


class AlertEntry(_Map):
    """One live alert of an ``alerts`` message."""

    alertname: AlertName
    node_id: NodeId
    instance: Instance = ""
    severity: Severity
    state: LiveState
    active_since_at: float
    fired_at: float | None = None
    value: float | None = None
    summary: Summary = ""


class AlertEvent(_Map):
    """One transition of an ``alert`` message."""

    alertname: AlertName
    node_id: NodeId
    instance: Instance = ""
    severity: Severity
    old: Literal["inactive", "pending", "firing", "unknown"]
    new: Literal["inactive", "pending", "firing", "resolved", "unknown"]
    changed_at: float
    active_since_at: float
    value: float | None = None
    summary: Summary = ""


class AlertsMessage(_Map):
    """``alerts``: (part of) every live alert, right after the snapshot."""

    type: Literal["alerts"]
    server_time_at: float
    alerts: Annotated[list[AlertEntry], Field(max_length=MAX_ALERTS_PER_MESSAGE)]


class AlertMessage(_Map):
    """``alert``: the transitions of one flush, oldest first."""

    type: Literal["alert"]
    server_time_at: float
    events: Annotated[list[AlertEvent], Field(max_length=MAX_ALERTS_PER_MESSAGE)]


AlertNews = AlertsMessage | AlertMessage
_ADAPTER: TypeAdapter[AlertNews] = TypeAdapter(Annotated[AlertNews, Field(discriminator="type")])


@dataclass(frozen=True, slots=True)
class AlertKey:
    """One rule on one node (and one mount, sensor or interface)."""

    alertname: str
    node_id: str
    instance: str


def decode_alert_frame(data: bytes, refused: ProtocolError) -> AlertNews:
    """The alert message in ``data``, which ``decode`` refused with ``refused``; else ``ProtocolError``.

    A frame ``decode`` refused for another reason than an unknown type is re-raised as is.
    """
    if refused.reason is not ErrorReason.UNKNOWN_TYPE:
        raise refused
    try:
        # ``decode`` got as far as the schema, so these bytes are one msgpack map within COLLECTOR_LIMITS.
        obj = msgpack.unpackb(data, raw=False, strict_map_key=True, max_ext_len=0)
        return _ADAPTER.validate_python(obj)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "<message>"
        if first["type"] == "union_tag_invalid":
            raise refused from exc  # neither an alert message nor any other known one
        raise ProtocolError(ErrorReason.SCHEMA, f"{where}: {first['msg']:.200}") from exc
    except (ValueError, TypeError) as exc:  # decode already unpacked this frame once; defensive only
        raise ProtocolError(ErrorReason.MALFORMED_MSGPACK, f"expected msgpack, got {exc!r:.200}") from exc
