"""snaprelabel: relabel disk snapshots in bulk on Huawei Cloud EVS and OpenStack Cinder."""

__version__ = "0.1.0"
USER_AGENT = f"snaprelabel/{__version__}"
