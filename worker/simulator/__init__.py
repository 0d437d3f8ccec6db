"""The bundled EVS-compatible simulator: a real HTTP server standing in for the cloud.

    async with Simulator(SimulatorConfig(snapshots=100, faults=[Fault("503", 0.05)])) as sim:
        ...  # talk HTTP to sim.url

Serves PUT/GET /v2/{project}/snapshots/{id}, /v2/{project}/cloudsnapshots/{id},
/v3/{project}/snapshots/{id} and their .../detail listings, plus a /_sim/ control API.
"""

from .config import DEFAULT_PROJECT_ID, Fault, SimulatorConfig
from .records import RequestRecord
from .server import Simulator
from .thread import SimulatorThread, run_in_thread

__all__ = [
    "DEFAULT_PROJECT_ID",
    "Fault",
    "RequestRecord",
    "Simulator",
    "SimulatorConfig",
    "SimulatorThread",
    "run_in_thread",
]
