"""The URL families that serve the same snapshot update, chosen by configuration."""

from __future__ import annotations

PATH_FAMILIES: dict[str, str] = {
    "v2": "/v2/{project_id}/snapshots",  # the seed's path (EVS, Cinder v2 compatible)
    "evs": "/v2/{project_id}/cloudsnapshots",  # Huawei's native EVS path
    "cinder-v3": "/v3/{project_id}/snapshots",  # OpenStack Cinder v3
}


def collection_path(family: str, project_id: str) -> str:
    return PATH_FAMILIES[family].format(project_id=project_id)


def snapshot_path(family: str, project_id: str, snapshot_id: str) -> str:
    return f"{collection_path(family, project_id)}/{snapshot_id}"
