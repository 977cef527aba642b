"""The Temps tab lists a node's GPUs under its sensors, names as plain text, and hides the table without GPUs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from PyQt6.QtWidgets import QTableWidget
from pytestqt.qtbot import QtBot

from shared.messages import GpuReading, NodeEntry, Snapshot
from tests.support.messages import GIB, WALL_T0, facts, heartbeat, history, status
from tests.viewer.helpers import HOSTILE_TEXT, start_window
from tests.viewer.subscribe_server import SubscribeServer
from viewer.details import SlowDetails, gpu_rows
from viewer.detailtabs import DetailTable
from viewer.window import MainWindow

GPUS = [
    GpuReading(index=1, name=HOSTILE_TEXT, memory_total_bytes=16 * GIB),
    GpuReading(index=0, name="NVIDIA H100 80GB HBM3", utilization_percent=99.5, memory_used_bytes=70 * GIB,
               memory_total_bytes=80 * GIB, temperature_celsius=71.0, power_watts=648.9),
]  # fmt: skip
ROWS = [
    ["gpu0", "NVIDIA H100 80GB HBM3", "99.5 %", "70 GiB", "80 GiB", "71 °C", "648.9 W"],
    ["gpu1", HOSTILE_TEXT, "", "", "16 GiB", "", ""],
]


def fleet() -> Snapshot:
    """Node "gpu" with two GPUs and a sensor; node "plain" with neither GPUs nor sensors."""
    gpus = heartbeat(1, sampled_at=WALL_T0 + 1, gpus=GPUS, temperatures={"Package id 0": 55.0})
    nodes = [
        NodeEntry(status=status("gpu"), facts=facts("gpu"), last_sample=gpus, history=history()),
        NodeEntry(status=status("plain"), facts=facts("plain"), last_sample=heartbeat(1), history=history()),
    ]
    return Snapshot(server_time_at=WALL_T0, nodes=nodes)


@pytest.fixture
def window(qtbot: QtBot) -> Iterator[MainWindow]:
    """A window following a real loopback subscribe server with nodes "gpu" and "plain"."""
    server = SubscribeServer(fleet)
    server.start()
    win = start_window(qtbot, server.url, rows=2)
    yield win
    win.close()
    server.close()


def gpu_table(win: MainWindow, node: str) -> DetailTable:
    """The GPU table of node ``node``'s Temps tab, that tab in front."""
    assert win.select_node(node)
    widget = win.detail.show_tab("Temps").findChild(QTableWidget, "gpus")
    assert isinstance(widget, DetailTable)
    return widget


class TestGpuTable:
    def test_rows_by_index(self) -> None:
        """One row per GPU by index, as nvidia-smi lists them; a figure the GPU did not give is blank."""
        kept = SlowDetails()
        kept.absorb(heartbeat(1, gpus=GPUS))
        assert gpu_rows(kept.carrier("gpus", WALL_T0 + 1, 1.0)) == ROWS
        assert gpu_rows(None) == []

    def test_gpus_show_in_the_temps_tab(self, window: MainWindow) -> None:
        """The Temps tab of a GPU node shows its GPUs, the hostile name literally, with the time they were read."""
        table = gpu_table(window, "gpu")
        assert table.texts() == ROWS
        assert not table.isHidden()
        note = window.detail.tables.temperatures.note.text()
        assert "GPUs as of" in note

    def test_no_gpu_table_without_gpus(self, window: MainWindow) -> None:
        """A node without GPUs shows no empty GPU table."""
        assert gpu_table(window, "gpu").texts() == ROWS
        table = gpu_table(window, "plain")
        assert table.texts() == []
        assert table.isHidden()
