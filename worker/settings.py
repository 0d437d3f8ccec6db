"""Settings, from (highest first) command-line flags, `SNAPRELABEL_*` environment variables, the
ecosystem's `OS_*` / `HUAWEICLOUD_SDK_*` variables, a TOML config file (`--config`), the cloud
named by --os-cloud in clouds.yaml, then these defaults. A bad value is a one-line ConfigError."""

from __future__ import annotations

import math
import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    PrivateAttr,
    SecretStr,
    SerializationInfo,
    ValidationError,
    field_serializer,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from . import ecosystem
from .errors import ConfigError as ConfigError  # re-exported: what load_settings raises
from .jobs import PROJECT_RE
from .quota import SPELLING, Rate, as_written
from .redaction import SECRETS

_config_file: ContextVar[Path | None] = ContextVar("config_file", default=None)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SNAPRELABEL_", extra="forbid")

    # Every field's description is its one documentation: the flag's help (commands/options.py)
    # and docs/settings.md (python -m worker.settings_doc) are made from it.

    # Where and as whom
    endpoint: str | None = Field(None, description=(
        "base URL of the snapshot API, e.g. https://evs.cn-north-4.myhuaweicloud.com; {region} in "
        "it is each row's region (or --region); unset: the service catalog's, else the Huawei "
        "Cloud endpoint of --region (or of each row's region)"))
    project_id: str | None = Field(None, description=(
        "project of rows without a project_id column, and the project the credential check "
        "lists; 32 hex digits"))
    token: SecretStr | None = Field(None, description=(
        "an X-Auth-Token you already have; prefer SNAPRELABEL_TOKEN or OS_TOKEN (flags show in "
        "ps); it cannot be renewed: once it expires, rows fail with 401"))
    token_file: Path | None = Field(None, description=(
        "read the token from FILE (a mounted Secret); the file is re-read when it changes and on "
        "a 401, so a token renewed in the Secret keeps a long-running job working; wins over a "
        "token given directly"))
    no_auth: bool = Field(False, description="send no credentials (a local simulator started with --no-auth)")
    path_family: Literal["v2", "evs", "cinder-v3"] = Field("v2", description=(
        "v2: /v2/{project}/snapshots (the seed's); evs: /v2/{project}/cloudsnapshots (Huawei's "
        "native); cinder-v3: /v3/{project}/snapshots; when not given and the endpoint comes from "
        "the service catalog, its service type decides"))
    # How fast
    rate: float | Literal["auto"] = Field(Rate(5.0), description=(
        "requests for the whole job, retries included, paced evenly: per second (10) or per "
        "window (10/s, 600/min, 36000/h, 240/20s); 0 = no limit; auto = find the API's quota "
        "and its window from its 429 answers; a lower limit stated in a 429 wins"))
    concurrency: int | Literal["auto"] = Field("auto", description=(
        "requests in flight, 1 to 1024; auto = from the rate and the latency seen, 64 without a "
        "rate limit"))
    connect_timeout: float = Field(10.0, gt=0, description="seconds to connect, per request")
    read_timeout: float = Field(30.0, gt=0, description=(
        "seconds to wait for each read of an answer, per request"))
    total_timeout: float = Field(60.0, gt=0, description="seconds for one request, connect to last byte")
    # Retries
    max_attempts: int = Field(6, ge=1, le=100, description="attempts per row, the first included; 1 to 100")
    backoff_base: float = Field(0.5, ge=0, description=(
        "seconds; attempt n waits up to base * 2^(n-1), with full jitter"))
    backoff_cap: float = Field(30.0, ge=0, description="longest single wait between attempts, in seconds")
    job_deadline: float = Field(300.0, gt=0, description="seconds from a row's first attempt to its last")
    throttled_backoff: float = Field(2.0, ge=0, description=(
        "least wait in seconds after a 429 without Retry-After: gateways count per second or per "
        "minute (with --rate auto, 0 unless given: the limiter waits for the quota itself)"))
    # TLS
    verify_tls: bool = Field(True, description=(
        "whether TLS certificates are verified; --insecure (or OS_INSECURE=true) turns "
        "verification off, with a warning on every run"))
    ca_bundle: Path | None = Field(None, description="CA certificates file to verify TLS with")
    # Rules
    allow_autobk_prefix: bool = Field(False, description=(
        "allow target names starting autobk_snapshot_, and changes to backup-owned snapshots"))
    skip_unchanged: bool = Field(False, description=(
        "list the live snapshots first; send no PUT for rows already at their target, whose "
        "snapshot is missing, or backup-owned"))
    limits_profile: Literal["seed", "huawei-current"] = Field("seed", description=(
        "length limits: seed = 255 UTF-8 bytes per field; huawei-current = Huawei's current "
        "documentation, name 64 / description 85 characters"))
    # Safety rails (worker.safety)
    max_failure_rate: float = Field(0.5, ge=0, le=1, description=(
        "stop (exit 3) once more than this fraction of the rows sent failed; 1 = never"))
    min_tasks: int = Field(100, ge=1, description=(
        "rows sent and finished before the failure rate is judged"))
    max_consecutive_auth_failures: int = Field(10, ge=0, description=(
        "stop after this many rows in a row answered 401/403 (run: exit 3; consume: the consumer "
        "exits 3 and the jobs it has not sent go back to the stream); 0 = off"))
    canary: int = Field(0, ge=0, description=(
        "send the first N valid rows alone; go on only if none of them failed; 0 = no canary"))
    limit: int | None = Field(None, ge=1, description=(
        "send only the first N valid rows; record the rest as not_attempted"))
    # Output
    report_format: Literal["csv", "jsonl"] = Field("csv", description=(
        "report file format: csv or jsonl; only JSON Lines can tell an empty value from an "
        "unknown one"))
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description=(
        "least severe log event shown: debug, info, warning or error"))
    log_format: Literal["auto", "json", "console"] = Field("auto", description=(
        "auto: JSON lines unless stdout is a terminal; json; console"))
    # Costs ~18% of rows/s unpaced, nothing at API rates: docs/design.md#durability.
    fsync: bool = Field(True, description=(
        "make every batch of report rows durable on disk before its senders take new rows "
        "(consume: before its jobs are acknowledged); --no-fsync for a scratch run"))
    grace: float = Field(20.0, ge=0, description=(
        "seconds requests in flight may finish after SIGTERM/SIGINT or a safety stop"))
    # Credentials (docs/auth.md). Secrets come from the environment, a file or a config file,
    # never from a flag: flags show in `ps`.
    auth_method: Literal["auto", "token", "password", "application_credential", "aksk", "metadata",
                         "none"] = Field("auto", description=(
        "auto: --no-auth, else a token, else an access key, else an application credential, else "
        "a password, else (when the metadata service answers within 1 s) metadata; or one of "
        "token, password, application_credential (OS_AUTH_TYPE=v3applicationcredential), aksk, "
        "metadata (temporary AK/SK from the metadata service of a Huawei Cloud ECS or CCE node "
        "with an agency, renewed before they expire), none"))
    metadata_url: str = Field("http://169.254.169.254", description=(
        "the instance metadata service that hands out temporary AK/SK (--auth-method metadata)"))
    os_cloud: str | None = Field(None, description=(
        "a cloud of clouds.yaml, which fills every setting no other source gives"))
    auth_url: str | None = Field(None, description=(
        "Keystone / IAM URL; unset: https://iam.{region}.myhuaweicloud.com/v3 from --region"))
    username: str | None = Field(None, description="user name, for a password")
    user_id: str | None = Field(None, description="user id, for a password (instead of a name and domain)")
    user_domain_name: str | None = Field(None, description=(
        "the user's domain by name; with neither name nor id: the domain with id 'default'"))
    user_domain_id: str | None = Field(None, description=(
        "the user's domain by id; with neither name nor id: 'default'"))
    password: SecretStr | None = Field(None, description=(
        "the password; environment or config file only (flags show in ps); --password-file wins"))
    password_file: Path | None = Field(None, description="read the password from FILE (a container secret)")
    application_credential_id: str | None = Field(None, description=(
        "Keystone application credential id (its project is the token's)"))
    application_credential_name: str | None = Field(None, description=(
        "application credential name, with its user (--username and domain, or user id) instead "
        "of the id"))
    application_credential_secret: SecretStr | None = Field(None, description=(
        "the application credential's secret; environment or config file only (flags show in "
        "ps); --application-credential-secret-file wins"))
    application_credential_secret_file: Path | None = Field(None, description=(
        "read the application credential's secret from FILE (a container secret)"))
    project_name: str | None = Field(None, description="scope the token by project name instead of id")
    project_domain_name: str | None = Field(None, description=(
        "the project's domain by name; with neither name nor id: the user's domain"))
    project_domain_id: str | None = Field(None, description=(
        "the project's domain by id; with neither name nor id: the user's domain"))
    region: str | None = Field(None, description=(
        "catalog region (required when the catalog offers several); without an endpoint or auth "
        "URL, the Huawei Cloud region: https://evs.REGION.myhuaweicloud.com and "
        "https://iam.REGION.myhuaweicloud.com/v3"))
    interface: Literal["public", "internal", "admin"] = Field("public", description=(
        "catalog interface: public, internal or admin; publicURL and the like are read too"))
    access_key: str | None = Field(None, description="access key (AK) for AK/SK request signing")
    secret_key: SecretStr | None = Field(None, description=(
        "secret key (SK) for AK/SK request signing; environment or config file only (flags show "
        "in ps); --sk-file wins"))
    sk_file: Path | None = Field(None, description="read the SK from FILE (a container secret)")
    security_token: SecretStr | None = Field(None, description=(
        "security token of temporary AK/SK credentials; environment or config file only"))
    # Queue mode (enqueue, consume, queue status)
    redis_url: SecretStr | None = Field(None, description=(  # may hold a password: a secret
        "queue mode: redis://[:PASSWORD@]HOST:6379/0, rediss:// for TLS, or unix://; kept secret "
        "(masked in the manifest): prefer SNAPRELABEL_REDIS_URL when it holds a password"))
    redis_url_file: Path | None = Field(None, description=(
        "read the Redis URL from FILE (a mounted Secret); re-read when it changes, so a rotated "
        "Redis password is used from the next connection on; wins over --redis"))
    stream: str = Field("relabel:jobs", min_length=1, description=(
        "the jobs stream; its results go to STREAM:results, dead letters to STREAM:dead"))
    group: str = Field("relabel", min_length=1, description="the consumer group")
    shared_rate: float | None = Field(None, description=(
        "requests for all consumers of this endpoint and project together, kept in Redis, in "
        "--rate's units (20, 1200/min); 0 = not shared; unset: --rate (with --rate auto, what "
        "the consumers learn of the quota is shared)"))
    claim_idle: float = Field(60.0, gt=0, description=(
        "seconds a held job may go without a sign of life before another consumer takes it"))
    max_deliveries: int = Field(5, ge=1, description=(
        "deliveries of a job before it goes to the dead-letter stream"))
    redis_wait: float = Field(300.0, ge=0, description=(
        "seconds to keep reconnecting to an unreachable Redis before giving up with exit code 4"))
    metrics_port: int | None = Field(None, ge=0, le=65535, description=(
        "consume: serve Prometheus metrics on this port; 0 = a free one"))

    _cloud_file: Path | None = PrivateAttr(None)  # the clouds.yaml the cloud came from
    _origins: dict[str, str] = PrivateAttr(default_factory=dict)  # setting -> where it came from

    @field_validator("interface", mode="before")
    @classmethod
    def _interface(cls, value: Any) -> Any:
        # Old catalogs and openrc files say publicURL / internalURL / adminURL.
        return value.strip().removesuffix("URL") if isinstance(value, str) else value

    @field_validator("auth_url")
    @classmethod
    def _auth_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value, "https://iam.cn-north-4.myhuaweicloud.com/v3")

    @field_validator("rate", mode="wrap")
    @classmethod
    def _rate(cls, value: Any, handler: Any) -> Any:
        # A Rate keeps the words it was written in (600/min) for the manifest and the logs.
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        try:
            return Rate.parse(value)
        except ValueError:
            raise ValueError(f"must be {SPELLING}, or auto") from None

    @field_validator("shared_rate", mode="wrap")
    @classmethod
    def _shared_rate(cls, value: Any, handler: Any) -> Any:
        if value is None:
            return None
        try:
            return Rate.parse(value)
        except ValueError:
            raise ValueError(f"must be {SPELLING}") from None

    @field_serializer("rate", "shared_rate")
    def _rate_as_written(self, value: float | str | None, info: SerializationInfo) -> float | str | None:
        """600/min stays 600/min in the manifest; a bare number stays a number."""
        if info.mode == "json":
            return as_written(value)
        return float(value) if isinstance(value, float) else value

    @field_validator("concurrency", mode="before")
    @classmethod
    def _concurrency(cls, value: Any) -> Any:
        return _number_or_auto(value, int, 1, 1024, "a whole number from 1 to 1024, or auto")

    @field_validator("metadata_url")
    @classmethod
    def _metadata_url(cls, value: str) -> str:
        return _http_url(value, "http://169.254.169.254")

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value, "https://evs.cn-north-4.myhuaweicloud.com")

    @field_validator("project_id")
    @classmethod
    def _project(cls, value: str | None) -> str | None:
        if value is not None and not PROJECT_RE.fullmatch(value.strip()):
            raise ValueError(f"{value!r} is not a project id (32 lower-case hex digits)")
        return value.strip() if value else value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        scheme = urlsplit(value.get_secret_value()).scheme
        if scheme not in ("redis", "rediss", "unix"):
            raise ValueError("is not a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("ca_bundle", "password_file", "sk_file", "token_file", "redis_url_file",
                     "application_credential_secret_file")
    @classmethod
    def _readable_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a readable file")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings,
                                                     _EcosystemEnv(settings_cls)]
        config_file = _config_file.get()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    def public(self) -> dict[str, Any]:
        """The effective settings without any secret, for logs and manifests."""
        return self.model_dump(mode="json", exclude=set(SECRET_FIELDS))

    @property
    def cloud_file(self) -> Path | None:
        return self._cloud_file

    def origin(self, name: str) -> str:
        """Where a setting came from, as a user would look for it: `--endpoint`,
        `SNAPRELABEL_ENDPOINT`, `OS_AUTH_URL`, `config file FILE`, `clouds.yaml cloud 'x'`, or
        `default`."""
        return self._origins.get(name, "default")

    def sources(self) -> str:
        """The kinds of source the settings came from, in the order they win."""
        kinds = []
        for origin in self._origins.values():
            kind = ("flags" if origin.startswith("--") else origin if origin.startswith(("config", "clouds"))
                    else "environment")
            if kind not in kinds:
                kinds.append(kind)
        order = {"flags": 0, "environment": 1}
        kinds.sort(key=lambda k: order.get(k, 2 if k.startswith("config") else 3))
        return ", ".join(kinds) if kinds else "defaults only"


SECRET_FIELDS = frozenset({"token", "password", "secret_key", "security_token",
                           "application_credential_secret"})
# Read by hand in ecosystem.env_values rather than through its ENV_SETTINGS table.
_EXTRA_ENV = {"project_id": (ecosystem.HUAWEI_PROJECT_ENV,), "verify_tls": ("OS_INSECURE",)}


def env_names(name: str) -> list[str]:
    """The environment variables that set a setting, the one that wins first."""
    ours = f"{Settings.model_config.get('env_prefix', '')}{name}".upper()
    theirs = [var for var, setting in ecosystem.ENV_SETTINGS.items() if setting == name]
    return [ours, *theirs, *_EXTRA_ENV.get(name, ())]


def default_text(name: str) -> str | None:
    """A setting's default as a user would write it; None when it has none."""
    default = Settings.model_fields[name].default
    if default is None:
        return None
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


def _http_url(value: str, example: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL such as {example}")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r}: give the base URL, without a query")
    if "@" in parts.netloc:  # user:password@ would end up in every log line naming the URL
        raise ValueError("give the URL without user:password@ (credentials go elsewhere)")
    try:
        parts.port  # noqa: B018 - reading it is the check: urlsplit raises for a bad port
    except ValueError:
        raise ValueError(f"{value!r} has an invalid port") from None
    return value.strip().rstrip("/")


class _EcosystemEnv(PydanticBaseSettingsSource):
    """OS_* and HUAWEICLOUD_SDK_* variables, below SNAPRELABEL_* ones."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads them all at once

    def __call__(self) -> dict[str, Any]:
        return ecosystem.env_values(os.environ)


def _number_or_auto(value: Any, kind: type, low: float, high: float | None, what: str) -> Any:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        if isinstance(value, bool) or (kind is int and isinstance(value, float)):
            raise ValueError
        number = kind(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"must be {what}") from None
    if not math.isfinite(number) or number < low or (high is not None and number > high):
        raise ValueError(f"must be {what}")
    return number


def load_settings(flags: dict[str, Any], config_file: str | None = None) -> Settings:
    path = Path(config_file) if config_file else None
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"config file {path}: not found")
        try:
            tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError, OSError) as exc:
            raise ConfigError(f"config file {path}: {exc}") from None
    token = _config_file.set(path)
    try:
        settings = _with_cloud(Settings(**flags), flags)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None
    except ValueError as exc:  # an OS_AUTH_TYPE we do not speak
        raise ConfigError(str(exc)) from None
    finally:
        _config_file.reset(token)
    settings._origins = _origins(settings, flags, path)
    for name in SECRET_FIELDS:
        secret = getattr(settings, name)
        if secret is not None:
            SECRETS.add(secret.get_secret_value())
    return settings


def _origins(settings: Settings, flags: dict[str, Any], config: Path | None) -> dict[str, str]:
    """Where each setting that is not a default came from, in the order the sources win."""
    in_file = tomllib.loads(config.read_text(encoding="utf-8")).keys() if config is not None else set()
    origins = {}
    for name in settings.model_fields_set:
        if name in flags:
            origins[name] = f"--{name.replace('_', '-')}"
        elif variable := next((v for v in env_names(name) if os.environ.get(v)), None):
            origins[name] = variable
        elif name in in_file:
            origins[name] = f"config file {config}"
        elif settings.cloud_file is not None:
            origins[name] = f"clouds.yaml cloud {settings.os_cloud!r} ({settings.cloud_file})"
    return origins


def _with_cloud(settings: Settings, flags: dict[str, Any]) -> Settings:
    """The cloud named by os_cloud fills every setting no other source gave."""
    if not settings.os_cloud:
        return settings
    try:
        values, path = ecosystem.cloud_values(settings.os_cloud, os.environ)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for name in SECRET_FIELDS & values.keys():
        SECRETS.add(values[name])
    unset = {k: v for k, v in values.items() if k not in settings.model_fields_set}
    try:
        settings = Settings(**flags, **unset)
    except ValidationError as exc:
        raise ConfigError(f"cloud {settings.os_cloud!r} in {path}: {_describe(exc, None)}") from None
    settings._cloud_file = path
    return settings


def _describe(exc: ValidationError, path: Path | None) -> str:
    messages = []
    for err in exc.errors(include_url=False, include_input=False):
        name = ".".join(str(p) for p in err["loc"]) or "settings"
        message = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            message = f"unknown setting{f' in {path}' if path else ''}"
        elif err["type"] == "literal_error":
            message = message.replace("Input should be", "must be")
        messages.append(f"setting {name}: {message}")
    return "; ".join(messages)

