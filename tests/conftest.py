"""Fixtures: quiet logs, a simulator over real sockets, in-process or on its own thread."""

from __future__ import annotations

import os

import pytest

from helpers import NO_METADATA, sim_config
from worker.logs import configure
from worker.simulator import Simulator, run_in_thread


@pytest.fixture(autouse=True)
def _quiet_logs():
    configure("warning", "json")


@pytest.fixture
async def sim(request):
    overrides = getattr(request, "param", {})
    async with Simulator(sim_config(**overrides)) as s:
        yield s


@pytest.fixture
def sim_thread():
    """A simulator on its own thread, for tests that run the CLI as a child process."""
    handles = []

    def start(**overrides):
        handle = run_in_thread(sim_config(**overrides))
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch):
    """The machine's own OS_* / HUAWEICLOUD_SDK_* variables must not leak into a test."""
    for name in list(os.environ):
        if name.startswith(("OS_", "HUAWEICLOUD_SDK_", "SNAPRELABEL_")):
            monkeypatch.delenv(name)
    for name, value in NO_METADATA.items():
        monkeypatch.setenv(name, value)
