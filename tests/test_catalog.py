"""Finding the snapshot API in a Keystone/IAM service catalog: type, interface, region."""

from __future__ import annotations

import pytest

from worker.api.catalog import CatalogError, base_url, find_endpoint

P = "0123456789abcdef0123456789abcdef"


def service(kind, *endpoints):
    return {"type": kind, "id": kind, "endpoints": [
        {"interface": i, "region_id": r, "region": r, "url": u} for i, r, u in endpoints]}


# Shaped like Huawei IAM's catalog (several regions, evs beside the Cinder-compatible types) plus
# an OpenStack one's internal/admin interfaces.
CATALOG = [
    service("identity", ("public", "cn-north-4", "https://iam.cn-north-4.myhuaweicloud.com/v3")),
    service("evs", ("public", "cn-north-4", f"https://evs.cn-north-4.myhuaweicloud.com/v2/{P}"),
            ("public", "ap-southeast-1", f"https://evs.ap-southeast-1.myhuaweicloud.com/v2/{P}")),
    service("volumev2", ("public", "cn-north-4", "https://evs.cn-north-4.myhuaweicloud.com/v2/$(tenant_id)s"),
            ("public", "ap-southeast-1", "https://evs.ap-southeast-1.myhuaweicloud.com/v2/$(tenant_id)s")),
    service("volumev3", ("public", "RegionOne", "https://cinder.example.com:8776/v3/%(tenant_id)s"),
            ("internal", "RegionOne", "http://10.0.0.5:8776/v3/%(tenant_id)s"),
            ("admin", "RegionOne", f"http://10.0.0.6:8776/v3/{P}/")),
]


@pytest.mark.parametrize("region, interface, url, kind, family", [
    ("RegionOne", "public", "https://cinder.example.com:8776", "volumev3", "cinder-v3"),
    ("RegionOne", "internal", "http://10.0.0.5:8776", "volumev3", "cinder-v3"),
    ("RegionOne", "admin", "http://10.0.0.6:8776", "volumev3", "cinder-v3"),
    ("cn-north-4", "public", "https://evs.cn-north-4.myhuaweicloud.com", "volumev2", "v2"),
    ("ap-southeast-1", "public", "https://evs.ap-southeast-1.myhuaweicloud.com", "volumev2", "v2"),
])
def test_the_region_and_interface_pick_the_endpoint(region, interface, url, kind, family):
    found = find_endpoint(CATALOG, region, interface)
    assert (found.url, found.service_type, found.family, found.region) == (url, kind, family, region)


def test_block_storage_comes_before_the_older_types():
    catalog = [*CATALOG, service("block-storage", ("public", "RegionOne", "https://bs.example.com/v3/"))]
    assert find_endpoint(catalog, "RegionOne").service_type == "block-storage"


def test_without_a_region_one_region_is_fine_and_several_are_an_error():
    assert find_endpoint(CATALOG, None, "internal").url == "http://10.0.0.5:8776"
    with pytest.raises(CatalogError, match=r"volumev2 in several regions \(ap-southeast-1, cn-north-4\)"):
        find_endpoint(CATALOG[:3], None)


def test_nothing_in_the_region_says_what_the_catalog_offers():
    with pytest.raises(CatalogError) as err:
        find_endpoint(CATALOG, "eu-west-0")
    assert "no endpoint for block-storage/volumev3/volumev2/evs, interface public, region eu-west-0" in str(err.value)
    assert "evs public cn-north-4" in str(err.value)
    with pytest.raises(CatalogError, match="offers no volume service"):
        find_endpoint([service("identity", ("public", "r", "https://id/v3"))], "r")


@pytest.mark.parametrize("url, base", [
    (f"https://evs.example.com/v2/{P}", "https://evs.example.com"),
    ("https://evs.example.com/v2/%(tenant_id)s", "https://evs.example.com"),
    ("https://evs.example.com/v3/$(project_id)s/", "https://evs.example.com"),
    ("https://h:8776/volume/v3", "https://h:8776/volume"),
    ("https://h/v2.1/{project_id}", "https://h"),
    ("https://h:8776", "https://h:8776"),
])
def test_the_version_and_project_suffix_is_cut(url, base):
    assert base_url(url) == base
