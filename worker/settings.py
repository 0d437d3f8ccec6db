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

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from . import ecosystem
from .errors import ConfigError
from .jobs import PROJECT_RE
from .redaction import SECRETS

_config_file: ContextVar[Path | None] = ContextVar("config_file", default=None)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SNAPRELABEL_", extra="forbid")

    # Where and as whom
    endpoint: str | None = None
    project_id: str | None = None
    token: SecretStr | None = None
    no_auth: bool = False
    path_family: Literal["v2", "evs", "cinder-v3"] = "v2"
    # How fast
    # requests per second for the whole job; 0 = no limit; "auto" finds the quota from 429s
    rate: float | Literal["auto"] = 5.0
    # requests in flight; "auto" sizes it from the rate and the latency seen
    concurrency: int | Literal["auto"] = "auto"
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(30.0, gt=0)
    total_timeout: float = Field(60.0, gt=0)
    # Retries
    max_attempts: int = Field(6, ge=1, le=100)
    backoff_base: float = Field(0.5, ge=0)
    backoff_cap: float = Field(30.0, ge=0)
    job_deadline: float = Field(300.0, gt=0)
    throttled_backoff: float = Field(2.0, ge=0)
    # TLS
    verify_tls: bool = True
    ca_bundle: Path | None = None
    # Rules
    allow_autobk_prefix: bool = False
    skip_unchanged: bool = False
    limits_profile: Literal["seed", "huawei-current"] = "seed"
    # Safety rails (worker.safety)
    max_failure_rate: float = Field(0.5, ge=0, le=1)
    min_tasks: int = Field(100, ge=1)
    max_consecutive_auth_failures: int = Field(10, ge=0, description="0 = off")
    canary: int = Field(0, ge=0, description="0 = no canary")
    limit: int | None = Field(None, ge=1)
    # Output
    report_format: Literal["csv", "jsonl"] = "csv"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    fsync: bool = True  # costs ~18% of rows/s unpaced, nothing at API rates (README, Durability)
    grace: float = Field(20.0, ge=0)
    # Credentials (README "Authentication"). Secrets come from the environment, a file or a
    # config file, never from a flag: flags show in `ps`.
    auth_method: Literal["auto", "token", "password", "aksk", "none"] = "auto"
    os_cloud: str | None = None
    auth_url: str | None = None
    username: str | None = None
    user_id: str | None = None
    user_domain_name: str | None = None
    user_domain_id: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = None
    project_name: str | None = None
    project_domain_name: str | None = None
    project_domain_id: str | None = None
    region: str | None = None
    interface: Literal["public", "internal", "admin"] = "public"
    access_key: str | None = None
    secret_key: SecretStr | None = None
    sk_file: Path | None = None
    security_token: SecretStr | None = None
    # Queue mode (enqueue, consume, queue status)
    redis_url: SecretStr | None = None  # may hold a password: a secret
    stream: str = Field("relabel:jobs", min_length=1)
    group: str = Field("relabel", min_length=1)
    shared_rate: float | None = Field(None, ge=0, description="requests/s for all replicas; default: rate")
    claim_idle: float = Field(60.0, gt=0)
    max_deliveries: int = Field(5, ge=1)
    redis_wait: float = Field(300.0, ge=0)
    metrics_port: int | None = Field(None, ge=0, le=65535)

    _cloud_file: Path | None = PrivateAttr(None)  # the clouds.yaml the cloud came from

    @field_validator("interface", mode="before")
    @classmethod
    def _interface(cls, value: Any) -> Any:
        # Old catalogs and openrc files say publicURL / internalURL / adminURL.
        return value.strip().removesuffix("URL") if isinstance(value, str) else value

    @field_validator("auth_url")
    @classmethod
    def _auth_url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value, "https://iam.cn-north-4.myhuaweicloud.com/v3")

    @field_validator("rate", mode="before")
    @classmethod
    def _rate(cls, value: Any) -> Any:
        return _number_or_auto(value, float, 0, None, "a number of requests per second, at "
                               "least 0 (0 = no limit), or auto")

    @field_validator("concurrency", mode="before")
    @classmethod
    def _concurrency(cls, value: Any) -> Any:
        return _number_or_auto(value, int, 1, 1024, "a whole number from 1 to 1024, or auto")

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

    @field_validator("ca_bundle", "password_file", "sk_file")
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
        return self.model_dump(mode="json", exclude=SECRET_FIELDS)

    @property
    def cloud_file(self) -> Path | None:
        return self._cloud_file


SECRET_FIELDS = frozenset({"token", "password", "secret_key", "security_token"})


def _http_url(value: str, example: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{value!r} is not an http(s) URL such as {example}")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r}: give the base URL, without a query")
    if "@" in parts.netloc:  # user:password@ would end up in every log line naming the URL
        raise ValueError("give the URL without user:password@ (credentials go elsewhere)")
    try:
        parts.port
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
    for name in SECRET_FIELDS:
        secret = getattr(settings, name)
        if secret is not None:
            SECRETS.add(secret.get_secret_value())
    return settings


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

