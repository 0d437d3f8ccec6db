"""The bundled EVS-compatible simulator: a real HTTP server standing in for the cloud.

    async with Simulator(SimulatorConfig(snapshots=100, faults=[Fault("503", 0.05)])) as sim:
        ...  # talk HTTP to sim.url

Serves PUT/GET /v2/{project}/snapshots/{id}, /v2/{project}/cloudsnapshots/{id},
/v3/{project}/snapshots/{id} and their .../detail listings, plus a /_sim/ control API.
"""

from typing import TYPE_CHECKING, Any

from .config import DEFAULT_PROJECT_ID, Fault, SimulatorConfig

if TYPE_CHECKING:
    from .records import RequestRecord
    from .server import Simulator
    from .thread import SimulatorThread, run_in_thread

# The server pulls in aiohttp.web: imported on first use, so that building the snaprelabel
# command line (which registers `simulate`) stays quick.
_LAZY = {"RequestRecord": ".records", "Simulator": ".server", "SimulatorThread": ".thread",
         "run_in_thread": ".thread"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_PROJECT_ID",
    "Fault",
    "RequestRecord",
    "Simulator",
    "SimulatorConfig",
    "SimulatorThread",
    "run_in_thread",
]
