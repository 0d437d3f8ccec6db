"""The configuration OpenStack and Huawei Cloud users already have: `OS_*` and `HUAWEICLOUD_SDK_*`
environment variables, and `clouds.yaml`, found where openstacksdk looks for it. Each is turned
into plain setting values; worker.settings decides what wins (flags, SNAPRELABEL_*, these
variables, the --config file, then the cloud)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

ENV_SETTINGS: dict[str, str] = {
    "OS_CLOUD": "os_cloud",
    "OS_AUTH_TYPE": "auth_method",
    "OS_AUTH_URL": "auth_url",
    "OS_USERNAME": "username",
    "OS_USER_ID": "user_id",
    "OS_PASSWORD": "password",
    "OS_USER_DOMAIN_NAME": "user_domain_name",
    "OS_USER_DOMAIN_ID": "user_domain_id",
    "OS_PROJECT_ID": "project_id",
    "OS_PROJECT_NAME": "project_name",
    "OS_PROJECT_DOMAIN_NAME": "project_domain_name",
    "OS_PROJECT_DOMAIN_ID": "project_domain_id",
    "OS_REGION_NAME": "region",
    "OS_INTERFACE": "interface",
    "OS_TOKEN": "token",
    "OS_APPLICATION_CREDENTIAL_ID": "application_credential_id",
    "OS_APPLICATION_CREDENTIAL_NAME": "application_credential_name",
    "OS_APPLICATION_CREDENTIAL_SECRET": "application_credential_secret",
    "OS_CACERT": "ca_bundle",
    "HUAWEICLOUD_SDK_AK": "access_key",
    "HUAWEICLOUD_SDK_SK": "secret_key",
    "HUAWEICLOUD_SDK_SECURITY_TOKEN": "security_token",
}
# Read only when OS_PROJECT_ID is not set.
HUAWEI_PROJECT_ENV = "HUAWEICLOUD_SDK_PROJECT_ID"

# openstacksdk's auth_type names -> our auth_method
AUTH_TYPES = {"password": "password", "v3password": "password", "token": "token",
              "v3token": "token", "aksk": "aksk", "none": "none", "noauth": "none",
              "v3applicationcredential": "application_credential",
              "applicationcredential": "application_credential",
              "application_credential": "application_credential"}

CLOUD_AUTH_KEYS: dict[str, str] = {
    "auth_url": "auth_url",
    "username": "username",
    "user_id": "user_id",
    "password": "password",
    "user_domain_name": "user_domain_name",
    "user_domain_id": "user_domain_id",
    "project_id": "project_id",
    "tenant_id": "project_id",
    "project_name": "project_name",
    "tenant_name": "project_name",
    "project_domain_name": "project_domain_name",
    "project_domain_id": "project_domain_id",
    "token": "token",
    "application_credential_id": "application_credential_id",
    "application_credential_name": "application_credential_name",
    "application_credential_secret": "application_credential_secret",
}
CLOUD_KEYS: dict[str, str] = {"region_name": "region", "interface": "interface", "cacert": "ca_bundle"}
_TRUE = {"1", "true", "yes", "on"}


def auth_method(auth_type: str) -> str:
    try:
        return AUTH_TYPES[auth_type.strip().lower()]
    except KeyError:
        raise ValueError(f"auth type {auth_type!r} is not supported: use password, token, "
                         "v3applicationcredential, AK/SK (HUAWEICLOUD_SDK_AK/SK) or none") from None


def env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """Settings from OS_* / HUAWEICLOUD_SDK_* variables; empty variables count as unset."""
    values: dict[str, Any] = {}
    for name, setting in ENV_SETTINGS.items():
        if environ.get(name):
            values[setting] = environ[name]
    if "project_id" not in values and environ.get(HUAWEI_PROJECT_ENV):
        values["project_id"] = environ[HUAWEI_PROJECT_ENV]
    if "auth_method" in values:
        values["auth_method"] = auth_method(values["auth_method"])
    if environ.get("OS_INSECURE"):
        values["verify_tls"] = environ["OS_INSECURE"].strip().lower() not in _TRUE
    return values


def search_path(stem: str, override: str | None) -> list[Path]:
    """Where openstacksdk looks for clouds.yaml / secure.yaml: an override first, then the
    working directory, ~/.config/openstack and /etc/openstack, as .yaml, .yml or .json."""
    home = _home()
    dirs = [Path.cwd(), *([home / ".config" / "openstack"] if home else []), Path("/etc/openstack")]
    files = [d / f"{stem}{suffix}" for d in dirs for suffix in (".yaml", ".yml", ".json")]
    return [Path(override), *files] if override else files


def _home() -> Path | None:
    """The user's home; None in a container run as a uid with no passwd entry and no HOME
    (docker run --user 1234), where Path.home() raises."""
    try:
        return Path.home()
    except (RuntimeError, KeyError, OSError):
        return None


def _first(paths: list[Path]) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


def _load(path: Path) -> dict[str, Any]:
    import yaml  # only with a clouds.yaml: every start-up would pay for it (docs/design.md#start-up)

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        # Only the problem and its line: YAML's own message quotes the line, which may hold a
        # password.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ValueError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', None) or 'syntax error'}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("clouds", {}), dict):
        raise ValueError(f"{path}: expected a 'clouds:' mapping")
    return data


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def cloud_values(name: str, environ: Mapping[str, str]) -> tuple[dict[str, Any], Path]:
    """Settings from the cloud `name` of clouds.yaml (merged with secure.yaml, as openstacksdk
    does), and the file it came from. Raises ValueError with a one-line reason."""
    paths = search_path("clouds", environ.get("OS_CLIENT_CONFIG_FILE"))
    path = _first(paths)
    if path is None:
        raise ValueError(f"cloud {name!r}: no clouds.yaml found (looked in "
                         f"{', '.join(str(p) for p in paths[:3])} ...)")
    clouds = _load(path).get("clouds") or {}
    secure_path = _first(search_path("secure", environ.get("OS_CLIENT_SECURE_FILE")))
    if secure_path is not None:
        clouds = _merge(clouds, _load(secure_path).get("clouds") or {})
    cloud = clouds.get(name)
    if not isinstance(cloud, dict):
        known = ", ".join(sorted(str(k) for k in clouds)) or "none"
        raise ValueError(f"cloud {name!r} is not in {path} (clouds there: {known})")
    values: dict[str, Any] = {}
    given_auth = cloud.get("auth")
    auth: dict[str, Any] = given_auth if isinstance(given_auth, dict) else {}
    for key, setting in CLOUD_AUTH_KEYS.items():
        if auth.get(key) not in (None, ""):
            values.setdefault(setting, str(auth[key]))
    for key, setting in CLOUD_KEYS.items():
        if cloud.get(key) not in (None, ""):
            values[setting] = str(cloud[key])
    if cloud.get("auth_type"):
        values["auth_method"] = auth_method(str(cloud["auth_type"]))
    verify = cloud.get("verify")
    if isinstance(verify, str):  # openstacksdk: a path here is the CA bundle
        values.setdefault("ca_bundle", verify)
    elif verify is False or str(cloud.get("insecure", "")).lower() in _TRUE:
        values["verify_tls"] = False
    return values, path
