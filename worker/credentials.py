"""Which credentials a job uses, decided from its settings before anything is sent.

One method, chosen deterministically: --auth-method (or OS_AUTH_TYPE, or the cloud's auth_type)
when given; else --no-auth; else a token; else an access key (AK/SK); else an application
credential; else a password; else, when the instance metadata service answers, its temporary
AK/SK (asked only then). A password or a secret read from a file (--password-file, --sk-file,
--application-credential-secret-file) wins over one given directly. The endpoint is --endpoint
when given; else, with an identity service, the service catalog's; else the Huawei Cloud endpoint
of --region.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict

from pydantic import SecretStr

from .api import metadata
from .api.aksk import AccessKey
from .api.keystone import ApplicationCredentialLogin, PasswordLogin
from .errors import ConfigError
from .secret_file import SecretFile, read_secret_file
from .settings import Settings

_REGION_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
NO_CREDENTIALS = (
    "no credentials: set a token (SNAPRELABEL_TOKEN, OS_TOKEN or --token-file), a password (OS_AUTH_URL, "
    "OS_USERNAME, OS_PASSWORD or --password-file, OS_PROJECT_ID or OS_PROJECT_NAME), an "
    "application credential (OS_AUTH_URL, OS_APPLICATION_CREDENTIAL_ID and "
    "OS_APPLICATION_CREDENTIAL_SECRET), an access "
    "key (HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK or --sk-file), --os-cloud NAME, --auth-method "
    "metadata on a Huawei Cloud ECS with an agency, or --no-auth for an endpoint that needs none"
)


def huawei_endpoint(service: str, region: str) -> str:
    return f"https://{service}.{region}.myhuaweicloud.com"


@dataclass(frozen=True)
class Credentials:
    method: str  # token | password | application_credential | aksk | metadata | none
    why: str  # what chose the method, for `auth check`
    origin: str  # where the settings came from
    token: str | None = field(default=None, repr=False)
    token_file: SecretFile | None = field(default=None, repr=False)  # --token-file: re-read when it changes
    login: PasswordLogin | ApplicationCredentialLogin | None = None
    key: AccessKey | None = field(default=None, repr=False)
    auth_url: str | None = None  # the identity service, for a token or the catalog
    endpoint: str | None = None  # None: look it up in the service catalog
    endpoint_origin: str = "--endpoint"
    # The endpoint the user gave (--endpoint), which may hold {region}: None when it comes from
    # the catalog or from the region (https://evs.REGION.myhuaweicloud.com, for each row's region).
    endpoint_template: str | None = None
    region: str | None = None
    interface: str = "public"
    path_family: str | None = None  # None: follow the catalog's service type, else v2
    project_id: str | None = None  # the project the credentials act for
    metadata_url: str | None = None  # metadata: the service that hands out temporary AK/SK

    def describe(self) -> str:
        """One line naming the method and the identity, never a secret."""
        if self.method in ("password", "application_credential"):
            assert self.login is not None
            kind = "password" if self.method == "password" else "application credential"
            return f"{kind} (Keystone v3 at {self.login.tokens_url}, {self.login.describe()})"
        if self.method == "aksk":
            assert self.key is not None
            temporary = ", temporary (security token)" if self.key.security_token else ""
            return (f"AK/SK (SDK-HMAC-SHA256, access key {self.key.access_key}{temporary}, "
                    f"project {self.key.project_id})")
        if self.method == "metadata":
            return (f"temporary AK/SK from the metadata service {self.metadata_url} (SDK-HMAC-SHA256 "
                    f"with a security token, renewed before they expire), project {self.project_id}")
        if self.method == "token":
            return "token (X-Auth-Token)"
        return "none (no credentials sent)"


class _Common(TypedDict):
    """The fields every method fills the same way."""

    method: str
    why: str
    origin: str
    region: str | None
    interface: str
    path_family: str | None
    project_id: str | None


class _Endpoint(TypedDict, total=False):
    endpoint: str | None
    endpoint_origin: str
    endpoint_template: str | None


def resolve(settings: Settings) -> Credentials:
    """Raises ConfigError (one line, exit 2) when the chosen method lacks something."""
    method, why = choose_method(settings)
    common: _Common = {
        "method": method,
        "why": why,
        "origin": settings.sources(),
        "region": settings.region,
        "interface": settings.interface,
        "path_family": settings.path_family if "path_family" in settings.model_fields_set else None,
        "project_id": settings.project_id,
    }
    if method == "none":
        endpoint = _require_endpoint(settings.endpoint)
        return Credentials(**common, endpoint=endpoint, endpoint_template=endpoint)
    if method == "token":
        token_file = SecretFile(settings.token_file, "token") if settings.token_file else None
        token = token_file.value if token_file else _secret(None, settings.token, "token")
        if token is None:
            raise ConfigError("--auth-method token: no token (SNAPRELABEL_TOKEN, OS_TOKEN, --token "
                              "or --token-file)")
        return Credentials(**common, token=token, token_file=token_file,
                           auth_url=settings.auth_url, **_endpoint(settings, catalog=bool(settings.auth_url)))
    if method == "aksk":
        return Credentials(**common, key=_access_key(settings), **_endpoint(settings, catalog=False))
    if method == "metadata":
        if not settings.project_id:
            raise ConfigError("metadata: no project (--project-id, SNAPRELABEL_PROJECT_ID or "
                              "HUAWEICLOUD_SDK_PROJECT_ID): requests are signed for one project")
        return Credentials(**common, metadata_url=settings.metadata_url, **_endpoint(settings, catalog=False))
    login = (_application_credential_login(settings) if method == "application_credential"
             else _password_login(settings))
    return Credentials(**common, login=login, auth_url=login.auth_url, **_endpoint(settings, catalog=True))


def choose_method(settings: Settings) -> tuple[str, str]:
    if settings.auth_method != "auto":
        return settings.auth_method, f"auth_method is {settings.auth_method}"
    if settings.no_auth:
        return "none", "--no-auth"
    if settings.token is not None or settings.token_file is not None:
        return "token", "a token is set (it comes before an access key and a password)"
    if settings.access_key or settings.secret_key or settings.sk_file:
        return "aksk", "an access key is set (it comes before a password)"
    if (settings.application_credential_secret or settings.application_credential_secret_file
            or settings.application_credential_id or settings.application_credential_name):
        return ("application_credential",
                "an application credential is set (it comes before a password)")
    if settings.password or settings.password_file or settings.username or settings.user_id:
        return "password", "a user and password are set"
    # Last, and only now: the probe may take a second where there is no metadata service.
    absent = metadata.probe(settings.metadata_url)
    if absent is None:
        return "metadata", f"nothing else is set and the metadata service {settings.metadata_url} answered"
    raise ConfigError(f"{NO_CREDENTIALS} ({absent})")


def _secret(path: Path | None, value: SecretStr | None, what: str) -> str | None:
    """A file wins over a value given directly."""
    if path is not None:
        return read_secret_file(path, what)
    return value.get_secret_value() if value is not None else None


def _access_key(settings: Settings) -> AccessKey:
    secret = _secret(settings.sk_file, settings.secret_key, "secret key")
    if secret is None:
        raise ConfigError("AK/SK: no secret key (HUAWEICLOUD_SDK_SK or --sk-file)")
    if not settings.access_key:
        raise ConfigError("AK/SK: no access key (HUAWEICLOUD_SDK_AK or --access-key)")
    if not settings.project_id:
        raise ConfigError("AK/SK: no project (HUAWEICLOUD_SDK_PROJECT_ID or --project-id): "
                          "requests are signed for one project")
    token = settings.security_token.get_secret_value() if settings.security_token else None
    return AccessKey(settings.access_key, secret, settings.project_id, token)


def _password_login(settings: Settings) -> PasswordLogin:
    password = _secret(settings.password_file, settings.password, "password")
    if password is None:
        raise ConfigError("password authentication: no password (OS_PASSWORD or --password-file)")
    if not (settings.username or settings.user_id):
        raise ConfigError("password authentication: no user (OS_USERNAME or OS_USER_ID)")
    if not (settings.project_id or settings.project_name):
        raise ConfigError("password authentication: no project to scope the token to "
                          "(OS_PROJECT_ID, OS_PROJECT_NAME or --project-id)")
    auth_url = settings.auth_url
    if auth_url is None:
        if not settings.region:
            raise ConfigError("password authentication: no identity service (OS_AUTH_URL, or "
                              "--region for Huawei Cloud IAM)")
        auth_url = huawei_endpoint("iam", _region(settings.region)) + "/v3"
    return PasswordLogin(
        auth_url=auth_url, password=password, username=settings.username, user_id=settings.user_id,
        user_domain_name=settings.user_domain_name, user_domain_id=settings.user_domain_id,
        project_id=settings.project_id, project_name=None if settings.project_id else settings.project_name,
        project_domain_name=settings.project_domain_name, project_domain_id=settings.project_domain_id,
    )


def _application_credential_login(settings: Settings) -> ApplicationCredentialLogin:
    what = "application credential authentication"
    secret = _secret(settings.application_credential_secret_file,
                     settings.application_credential_secret, "application credential secret")
    if secret is None:
        raise ConfigError(f"{what}: no secret (OS_APPLICATION_CREDENTIAL_SECRET or "
                          "--application-credential-secret-file)")
    credential_id = settings.application_credential_id
    name = settings.application_credential_name
    if not (credential_id or name):
        raise ConfigError(f"{what}: no credential (OS_APPLICATION_CREDENTIAL_ID, or "
                          "OS_APPLICATION_CREDENTIAL_NAME with its user)")
    if not credential_id and not (settings.username or settings.user_id):
        raise ConfigError(f"{what}: a credential by name needs its user (OS_USERNAME and "
                          "OS_USER_DOMAIN_NAME, or OS_USER_ID)")
    if not settings.auth_url:
        raise ConfigError(f"{what}: no identity service (OS_AUTH_URL)")
    return ApplicationCredentialLogin(
        auth_url=settings.auth_url, secret=secret, credential_id=credential_id,
        credential_name=None if credential_id else name, username=settings.username,
        user_id=settings.user_id, user_domain_name=settings.user_domain_name,
        user_domain_id=settings.user_domain_id)


def _endpoint(settings: Settings, catalog: bool) -> _Endpoint:
    if settings.endpoint:
        return {"endpoint": settings.endpoint, "endpoint_origin": settings.origin("endpoint"),
                "endpoint_template": settings.endpoint}
    if catalog:
        return {"endpoint": None, "endpoint_origin": "service catalog"}
    if settings.region:
        return {"endpoint": huawei_endpoint("evs", _region(settings.region)),
                "endpoint_origin": f"region {settings.region} from {settings.origin('region')}"}
    return {"endpoint": _require_endpoint(None)}


def _require_endpoint(endpoint: str | None) -> str:
    if not endpoint:
        raise ConfigError("no endpoint: give --endpoint (or SNAPRELABEL_ENDPOINT), or --region for "
                          "Huawei Cloud")
    return endpoint


def _region(region: str) -> str:
    if not _REGION_RE.fullmatch(region):
        raise ConfigError(f"region {region!r} is not a region name such as cn-north-4")
    return region
