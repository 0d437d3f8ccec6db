"""The snapshot API's endpoint, found in a Keystone/IAM service catalog when the user gave none.

Catalog URLs of volume services end in the version and the project (`/v3/{project_id}`,
`/v2/%(tenant_id)s`); the client builds its own paths from a base URL, so that suffix is cut,
and the path family follows the service type unless the user chose one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import SnaprelabelError

# Preference order: the first type the catalog offers (in the wanted region and interface) wins.
VOLUME_TYPES = ("block-storage", "volumev3", "volumev2", "evs")
FAMILY_OF_TYPE = {"block-storage": "cinder-v3", "volumev3": "cinder-v3", "volumev2": "v2", "evs": "v2"}
_SUFFIX = re.compile(
    r"/v\d+(?:\.\d+)?(?:/(?:[0-9a-fA-F]{32}|[%$]\((?:tenant|project)_id\)s|\{(?:tenant|project)_id\}))?/*$"
)


class CatalogError(SnaprelabelError):
    """No usable endpoint: the message says what the catalog offers instead."""


@dataclass(frozen=True)
class ServiceEndpoint:
    url: str  # base URL, without version and project
    service_type: str
    interface: str
    region: str | None

    @property
    def family(self) -> str:
        return FAMILY_OF_TYPE[self.service_type]


def base_url(url: str) -> str:
    return _SUFFIX.sub("", url.rstrip("/"))


def _region(endpoint: dict[str, Any]) -> str | None:
    return endpoint.get("region_id") or endpoint.get("region")


def find_endpoint(catalog: list[dict[str, Any]], region: str | None, interface: str = "public",
                  types: tuple[str, ...] = VOLUME_TYPES) -> ServiceEndpoint:
    offered: list[str] = []
    for service_type in types:
        endpoints = [e for service in catalog if isinstance(service, dict)
                     and service.get("type") == service_type
                     for e in service.get("endpoints") or () if isinstance(e, dict) and e.get("url")]
        offered += [f"{service_type} {e.get('interface')} {_region(e)}" for e in endpoints]
        matches = [e for e in endpoints if e.get("interface") == interface
                   and (region is None or _region(e) == region)]
        regions = sorted({str(_region(e)) for e in matches})
        if len(regions) > 1:
            raise CatalogError(f"the catalog offers {service_type} in several regions "
                               f"({', '.join(regions)}): choose one with --region or OS_REGION_NAME")
        if matches:
            chosen = matches[0]
            return ServiceEndpoint(base_url(chosen["url"]), service_type, interface, _region(chosen))
    wanted = f"{'/'.join(types)}, interface {interface}" + (f", region {region}" if region else "")
    found = "; it offers " + ", ".join(offered) if offered else "; it offers no volume service"
    raise CatalogError(f"the service catalog has no endpoint for {wanted}{found}")
