"""Every family a real collector's /metrics serves is listed, with its type, in docs/protocol.md 8.3.

The contract test renders a snapshot without the fan-out and listing counters; this scrapes a
collector on loopback, so the families only the HTTP handler adds are checked too.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.collector import MakeClient, connect_agent, send_heartbeat
from tests.support.messages import heartbeat, hello

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def metrics_table() -> str:
    """The text of section 8.3, up to the next section."""
    text = PROTOCOL.read_text(encoding="utf-8")
    start = text.index("### 8.3")
    return text[start : text.index("\n### ", start + 1)]


class TestMetricsDoc:
    async def test_every_family_served_is_in_section_8_3(self, make_client: MakeClient) -> None:
        """A scrape of a collector with one node and one viewer names no metric the spec's table lacks."""
        client = await make_client()
        ws, _ = await connect_agent(client, hello())
        await send_heartbeat(ws, heartbeat(1))
        viewer = await client.ws_connect("/api/v1/subscribe")
        text = await (await client.get("/metrics")).text()
        exposed = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
        table = metrics_table()
        missing = []
        for name, kind in exposed.items():
            shown = name + "_total" if kind == "counter" and not name.endswith("_total") else name
            if not re.search(rf"^\| `{re.escape(shown)}` \| {kind} \|", table, re.MULTILINE):
                missing.append(f"{shown} ({kind})")
        assert not missing
        assert "nodewatch_collector_fanout_lagged_total" in exposed
        assert "nodewatch_collector_listings_active" in exposed
        await viewer.close()
        await ws.close()
