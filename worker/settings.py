"""Settings, from (highest first) command-line flags, `SNAPRELABEL_*` environment variables, a
TOML config file (`--config`), then these defaults. A bad value is a one-line ConfigError."""

from __future__ import annotations

import math
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .jobs import PROJECT_RE

_config_file: ContextVar[Path | None] = ContextVar("config_file", default=None)


class ConfigError(Exception):
    """A setting, flag or file that makes the job impossible to start (exit code 2)."""


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
    limits_profile: Literal["seed", "huawei-current"] = "seed"
    # Output
    report_format: Literal["csv", "jsonl"] = "csv"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"
    fsync: bool = False
    grace: float = Field(20.0, ge=0)

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
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL such as https://evs.cn-north-4.myhuaweicloud.com")
        if parts.query or parts.fragment:
            raise ValueError(f"{value!r}: give the base URL, without a query")
        try:
            parts.port
        except ValueError:
            raise ValueError(f"{value!r} has an invalid port") from None
        return value.strip().rstrip("/")

    @field_validator("project_id")
    @classmethod
    def _project(cls, value: str | None) -> str | None:
        if value is not None and not PROJECT_RE.fullmatch(value.strip()):
            raise ValueError(f"{value!r} is not a project id (32 lower-case hex digits)")
        return value.strip() if value else value

    @field_validator("ca_bundle")
    @classmethod
    def _ca_bundle(cls, value: Path | None) -> Path | None:
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
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = _config_file.get()
        if config_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    def public(self) -> dict[str, Any]:
        """The effective settings without any secret, for logs and manifests."""
        return self.model_dump(mode="json", exclude={"token"})


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
        return Settings(**flags)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, path)) from None
    finally:
        _config_file.reset(token)


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

