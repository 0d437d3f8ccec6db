"""What a simulator run looks like: its seed data, auth, faults, limits and latency."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .identity import DEFAULT_CATALOG, AccessKeyPair, AppCredential, CatalogEntry, User
from .quota import Gate, Model, QuotaChange, SlidingWindow, parse_bucket, parse_window

DEFAULT_PROJECT_ID = "0123456789abcdef0123456789abcdef"

# Kinds that are not a plain status code; any 4xx/5xx code ("500", "418") is a kind as well.
NAMED_FAULTS = frozenset(
    {
        "429-retry-after",  # gateway 429 with Retry-After: 1
        "429-retry-date",  # gateway 429 with Retry-After as an HTTP date
        "reset",  # abort the connection before applying the change
        "reset-after",  # apply the change, then abort (the lost-response case)
        "hang",  # wait hang_seconds, then answer normally
        "truncate",  # apply, then send half the body under the full Content-Length
        "empty",  # 503 with an empty body
    }
)


def check_fault_kind(kind: object) -> str:
    """The kind as a string, or ValueError naming the kinds that exist."""
    text = str(kind).strip().lower()
    if text in NAMED_FAULTS:
        return text
    if len(text) == 3 and text.isdigit() and 400 <= int(text) <= 599:
        return text
    raise ValueError(
        f"unknown fault kind {str(kind)!r}: use a 4xx/5xx status code or one of "
        + ", ".join(sorted(NAMED_FAULTS))
    )


@dataclass(frozen=True, slots=True)
class Fault:
    """Each API request hits this fault with probability `fraction` (drawn from the seeded RNG)."""

    kind: str
    fraction: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", check_fault_kind(self.kind))
        fraction = float(self.fraction)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fault fraction must be within 0..1, got {self.fraction!r}")
        object.__setattr__(self, "fraction", fraction)

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """'KIND:FRACTION', e.g. '503:0.05' or '429-retry-after:0.1'."""
        kind, sep, fraction = spec.rpartition(":")
        if not sep or not kind:
            raise ValueError(f"fault must look like KIND:FRACTION, got {spec!r}")
        try:
            value = float(fraction)
        except ValueError:
            raise ValueError(f"fault fraction is not a number in {spec!r}") from None
        return cls(kind, value)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "fraction": self.fraction}


# What to_faults accepts for one fault.
FaultSpec = Fault | str | tuple[str, float] | dict[str, Any]


def to_faults(items: Iterable[FaultSpec]) -> list[Fault]:
    """Accept Fault objects, 'KIND:FRACTION' strings, (kind, fraction) pairs or dicts."""
    out: list[Fault] = []
    for item in items:
        if isinstance(item, Fault):
            out.append(item)
        elif isinstance(item, str):
            out.append(Fault.parse(item))
        elif isinstance(item, dict):
            if set(item) != {"kind", "fraction"}:
                raise ValueError(f"a fault needs exactly 'kind' and 'fraction', got {item!r}")
            out.append(Fault(item["kind"], item["fraction"]))
        else:
            kind, fraction = item
            out.append(Fault(kind, fraction))
    return out


def check_rate(rate: object) -> int | None:
    if rate is None:
        return None
    if isinstance(rate, bool) or not isinstance(rate, int) or rate < 1:
        raise ValueError(f"rate limit must be a positive integer (requests per second), got {rate!r}")
    return rate


def check_retry_after(value: object) -> int | None:
    # Retry-After is whole seconds on the wire (RFC 9110 delay-seconds), so only integers.
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"retry-after must be a non-negative integer of seconds, got {value!r}")
    return value


@dataclass(slots=True)
class SimulatorConfig:
    snapshots: int = 1000
    project_id: str = DEFAULT_PROJECT_ID
    projects: tuple[str, ...] = ()  # more projects, each seeded with `snapshots` of its own
    seed: int = 42
    seed_file: Path | None = None
    tokens: frozenset[str] = frozenset({"sim-token"})
    faults: list[Fault] = field(default_factory=list)
    rate_limit: int | None = None
    rate_limit_retry_after: int | None = None
    latency: float = 0.0
    latency_jitter: float = 0.0
    record: bool = True
    always_fail: dict[str, str] = field(default_factory=dict)
    autobk_fraction: float = 0.02
    hang_seconds: float = 30.0
    # Identity (simulator/identity.py): Keystone users, AK/SK pairs, how long issued tokens live,
    # the catalog they carry, and how far the server's clock is ahead (AK/SK dates are checked).
    users: tuple[User, ...] = ()
    access_keys: tuple[AccessKeyPair, ...] = ()
    token_lifetime: float = 3600.0
    catalog: tuple[CatalogEntry, ...] = DEFAULT_CATALOG
    clock_offset: float = 0.0
    # Seconds the metadata service's temporary AK/SK live; None: no metadata service.
    metadata_key_lifetime: float | None = None
    # Gateway quotas (simulator/quota.py), instead of rate_limit: N per fixed window ("600/min")
    # or a token bucket ("RATE:BURST"); their 429s with Retry-After (seconds to the reopening) or
    # without, with the limit stated in the message or not; changes falling due after so many
    # seconds ("30s:50/s").
    quota: str | None = None
    quota_bucket: str | None = None
    quota_retry_after: bool = False
    quota_limit_stated: bool = True
    quota_changes: tuple[QuotaChange, ...] = ()
    app_credentials: tuple[AppCredential, ...] = ()
    truncate_issued_at: bool = False  # Keystone's whole-second issued_at
    send_issued_at: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.snapshots, bool) or not isinstance(self.snapshots, int) or self.snapshots < 0:
            raise ValueError(f"snapshots must be a non-negative integer, got {self.snapshots!r}")
        if not self.project_id or "/" in self.project_id:
            raise ValueError(f"project_id must be a non-empty path segment, got {self.project_id!r}")
        self.projects = tuple(self.projects)
        if any(not p or "/" in p for p in self.projects):
            raise ValueError(f"projects must be non-empty path segments, got {self.projects!r}")
        if self.seed_file is not None:
            self.seed_file = Path(self.seed_file)
        tokens: object = self.tokens  # callers pass a set too, or a lone string
        if isinstance(tokens, str):  # a lone string would become a set of characters
            self.tokens = frozenset({tokens})
        self.tokens = frozenset(self.tokens)
        self.faults = to_faults(self.faults)
        self.rate_limit = check_rate(self.rate_limit)
        self.rate_limit_retry_after = check_retry_after(self.rate_limit_retry_after)
        for name in ("latency", "latency_jitter", "hang_seconds"):
            if float(getattr(self, name)) < 0:
                raise ValueError(f"{name} must not be negative")
            setattr(self, name, float(getattr(self, name)))
        if not 0.0 <= self.autobk_fraction <= 1.0:
            raise ValueError(f"autobk_fraction must be within 0..1, got {self.autobk_fraction!r}")
        self.always_fail = {str(k): check_fault_kind(v) for k, v in dict(self.always_fail).items()}
        self.users = tuple(u if isinstance(u, User) else User.parse(u) for u in self.users)
        self.access_keys = tuple(k if isinstance(k, AccessKeyPair) else AccessKeyPair.parse(k)
                                 for k in self.access_keys)
        self.app_credentials = tuple(c if isinstance(c, AppCredential) else AppCredential.parse(c)
                                     for c in self.app_credentials)
        self.catalog = tuple(self.catalog)
        if float(self.token_lifetime) <= 0:
            raise ValueError("token_lifetime must be positive")
        self.token_lifetime = float(self.token_lifetime)
        self.clock_offset = float(self.clock_offset)
        if self.metadata_key_lifetime is not None:
            if float(self.metadata_key_lifetime) <= 0:
                raise ValueError("metadata_key_lifetime must be positive")
            self.metadata_key_lifetime = float(self.metadata_key_lifetime)
        self._check_quota()

    def _check_quota(self) -> None:
        given = [name for name in ("rate_limit", "quota", "quota_bucket") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of rate_limit, quota and quota_bucket, not {' and '.join(given)}")
        if self.quota is not None:
            self.quota = parse_window(self.quota).describe()
        if self.quota_bucket is not None:
            bucket = parse_bucket(self.quota_bucket)
            self.quota_bucket = f"{bucket.rate:g}:{bucket.burst}"
        changes: Iterable[object] = self.quota_changes
        self.quota_changes = tuple(c if isinstance(c, QuotaChange) else QuotaChange.parse(str(c)) for c in changes)
        if self.quota_changes and not given:
            raise ValueError("quota_changes need a quota to start from (quota, quota_bucket or rate_limit)")
        self.quota_retry_after = bool(self.quota_retry_after)
        self.quota_limit_stated = bool(self.quota_limit_stated)

    def gate(self) -> Gate | None:
        """The quota asked for (rate_limit, quota or quota_bucket), its changes counting from now."""
        model: Model
        if self.rate_limit is not None:
            model = SlidingWindow(self.rate_limit, self.rate_limit_retry_after)
        elif self.quota is not None:
            model = parse_window(self.quota)
        elif self.quota_bucket is not None:
            model = parse_bucket(self.quota_bucket)
        else:
            return None
        return Gate(model, retry_after=self.quota_retry_after, limit_stated=self.quota_limit_stated,
                    changes=self.quota_changes)
