"""`snaprelabel simulate` / `python -m worker.simulator`: serve the simulator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Self, TypeVar

from .config import DEFAULT_PROJECT_ID, Fault, SimulatorConfig
from .identity import DEFAULT_CATALOG, AccessKeyPair, AppCredential, CatalogEntry, User
from .quota import QuotaChange, parse_bucket, parse_window

if TYPE_CHECKING:
    from .server import Simulator

N = TypeVar("N", int, float)


def _type(convert: Callable[[str], N], check: Callable[[N], bool], what: str) -> Callable[[str], N]:
    def parse(text: str) -> N:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not check(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


_port = _type(int, lambda v: 0 <= v <= 65535, "a port (0-65535)")
_count = _type(int, lambda v: v >= 0, "a non-negative integer")
_positive_int = _type(int, lambda v: v >= 1, "a positive integer")
_seconds = _type(float, lambda v: v >= 0, "a non-negative number of seconds")
_fraction = _type(float, lambda v: 0 <= v <= 1, "a fraction within 0..1")


def _fault(text: str) -> Fault:
    try:
        return Fault.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _checked(parse: Callable[[str], object], what: str) -> Callable[[str], str]:
    """The text as given, once `parse` accepts it (SimulatorConfig parses it again)."""

    def check(text: str) -> str:
        try:
            parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text

    check.__name__ = what
    return check


def _on_off(text: str) -> bool:
    if text.lower() in ("on", "yes", "true", "1"):
        return True
    if text.lower() in ("off", "no", "false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")


_on_off.__name__ = "on/off"


def _always_fail(text: str) -> tuple[str, str]:
    sid, sep, kind = text.rpartition(":")
    if not sep or not sid:
        raise argparse.ArgumentTypeError(f"expected SNAPSHOT_ID:KIND, got {text!r}")
    try:
        return sid, Fault(kind, 1.0).kind
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Parsable(Protocol):
    """A class that reads itself from a command-line spec (User, AccessKeyPair)."""

    @classmethod
    def parse(cls, spec: str) -> Self: ...


P = TypeVar("P", bound=_Parsable)


def _parsed(cls: type[P]) -> Callable[[str], P]:
    def parse(text: str) -> P:
        try:
            return cls.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = cls.__name__
    return parse


def _existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    add("--port", type=_port, default=8776, help="port to bind; 0 picks a free one (default 8776)")
    add("--snapshots", type=_count, default=1000, help="number of seeded snapshots (default 1000)")
    add("--seed", type=int, default=42, help="seed for snapshots and fault draws (default 42)")
    add("--seed-file", type=_existing_file, help="CSV (id,name,description[,project_id,...]) to seed from")
    add("--project-id", default=DEFAULT_PROJECT_ID, help="project of the seeded snapshots")
    add("--more-project", action="append", type=_project, default=[], metavar="PROJECT_ID",
        help="another project, seeded with --snapshots of its own; --user users may scope "
             "tokens to it (repeatable)")
    add("--region", action="append", type=_project, default=[], metavar="NAME",
        help="a catalog region served here at /regions/NAME (volumev3 {self}/regions/NAME/v3/"
             "{project_id}), beside the default catalog (repeatable)")
    auth = parser.add_mutually_exclusive_group()
    auth.add_argument(
        "--token", action="append", metavar="TOKEN", help="accepted X-Auth-Token (repeatable; default sim-token)"
    )
    auth.add_argument("--no-auth", action="store_true", help="accept requests without a token")
    add("--user", action="append", type=_parsed(User), default=[], metavar="NAME:PASSWORD",
        help="a Keystone user (domain Default) for POST /v3/auth/tokens (repeatable)")
    add("--access-key", action="append", type=_parsed(AccessKeyPair), default=[], metavar="AK:SK",
        help="an access key accepted with AK/SK signing (repeatable)")
    add("--app-credential", action="append", type=_parsed(AppCredential), default=[],
        metavar="ID:SECRET", help="a Keystone application credential (its own user, member role, "
        "the simulator's project) for POST /v3/auth/tokens (repeatable)")
    add("--truncate-issued-at", action="store_true",
        help="issue tokens whose issued_at is cut to the second, as Keystone does")
    add("--token-lifetime", type=_seconds, default=3600.0, metavar="SECONDS",
        help="how long issued tokens live (default 3600)")
    add("--metadata-key-lifetime", type=_seconds, metavar="SECONDS",
        help="serve an ECS metadata service (GET /openstack/latest/securitykey) handing out "
             "temporary AK/SK that expire after SECONDS")
    add(
        "--fault", action="append", type=_fault, default=[], metavar="KIND:FRACTION",
        help="inject a fault, e.g. 503:0.05, reset:0.01, 429-retry-after:0.1 (repeatable)",
    )  # fmt: skip
    add(
        "--always-fail", action="append", type=_always_fail, default=[], metavar="SNAPSHOT_ID:KIND",
        help="always answer this snapshot with a fault, e.g. ID:500 (repeatable)",
    )  # fmt: skip
    quota = parser.add_mutually_exclusive_group()
    quota.add_argument("--rate-limit", type=_positive_int, metavar="R",
                       help="answer 429 above R requests in any sliding second")
    quota.add_argument("--quota", type=_checked(parse_window, "a quota"), metavar="N/WINDOW",
                       help="a gateway quota: N requests per fixed window on the server's clock, "
                            "e.g. 100/s, 600/min, 36000/h, 240/20s; 429 past it")
    quota.add_argument("--quota-bucket", type=_checked(parse_bucket, "a token bucket"), metavar="RATE:BURST",
                       help="a token-bucket quota: RATE requests a second, BURST at once")
    add("--retry-after", type=_count, metavar="SECONDS",
        help="a fixed Retry-After (whole seconds) on --rate-limit 429s")
    add("--quota-retry-after", type=_on_off, default=False, metavar="on|off",
        help="quota 429s carry Retry-After: seconds until the window reopens (or the next token), "
             "rounded up (default off)")
    add("--quota-limit-stated", type=_on_off, default=True, metavar="on|off",
        help="quota 429s state the limit as Huawei's gateway does, 'limit:600,time:1 minute' "
             "(default on; off: the bare 'The throttling threshold has been reached')")
    add("--quota-change", action="append", type=_checked(QuotaChange.parse, "a quota change"), default=[],
        metavar="AFTER:QUOTA", help="after AFTER of server time the quota becomes QUOTA, "
        "e.g. 30s:50/s or 1min:5:10 for a bucket (repeatable)")
    add("--latency", type=_seconds, default=0.0, metavar="SECONDS", help="added latency per request")
    add("--latency-jitter", type=_seconds, default=0.0, metavar="SECONDS", help="uniform +/- jitter on the latency")
    add("--hang-seconds", type=_seconds, default=30.0, help="how long a 'hang' fault waits (default 30)")
    add("--autobk-fraction", type=_fraction, default=0.02, help="share of autobk_snapshot_ names (default 0.02)")
    add("--no-record", action="store_true", help="keep no request log (lean benchmark mode)")


def _project(text: str) -> str:
    """A path segment: a project id or a region name."""
    if not text or "/" in text or not text.isprintable():
        raise argparse.ArgumentTypeError(f"{text!r} is not a path segment")
    return text


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    tokens: set[str] = set() if args.no_auth else set(args.token or ["sim-token"])
    return SimulatorConfig(
        snapshots=args.snapshots,
        project_id=args.project_id,
        seed=args.seed,
        seed_file=args.seed_file,
        tokens=frozenset(tokens),
        faults=list(args.fault),
        rate_limit=args.rate_limit,
        rate_limit_retry_after=args.retry_after,
        quota=args.quota,
        quota_bucket=args.quota_bucket,
        quota_retry_after=args.quota_retry_after,
        quota_limit_stated=args.quota_limit_stated,
        quota_changes=tuple(args.quota_change),
        latency=args.latency,
        latency_jitter=args.latency_jitter,
        record=not args.no_record,
        always_fail=dict(args.always_fail),
        autobk_fraction=args.autobk_fraction,
        hang_seconds=args.hang_seconds,
        projects=tuple(args.more_project),
        users=() if args.no_auth else tuple(replace(u, projects=tuple(args.more_project)) for u in args.user),
        catalog=DEFAULT_CATALOG + tuple(
            CatalogEntry("volumev3", "public", region, "{self}/regions/" + region + "/v3/{project_id}")
            for region in args.region),
        access_keys=() if args.no_auth else tuple(args.access_key),
        app_credentials=() if args.no_auth else tuple(args.app_credential),
        truncate_issued_at=args.truncate_issued_at,
        token_lifetime=args.token_lifetime,
        metadata_key_lifetime=None if args.no_auth else args.metadata_key_lifetime,
    )


def _auth_text(config: SimulatorConfig) -> str:
    """How to authenticate, for the start line: the default token is not a secret."""
    if not (config.tokens or config.users or config.access_keys or config.app_credentials
            or config.metadata_key_lifetime):
        return "no auth"
    # The default token is not a secret; tokens given with --token are not printed.
    named = "token sim-token" if config.tokens == {"sim-token"} else (
        f"{len(config.tokens)} token{'s' if len(config.tokens) > 1 else ''} given with --token")
    parts = [named] if config.tokens else []
    parts += [f"user {user.name}" for user in config.users]
    parts += [f"access key {key.access_key}" for key in config.access_keys]
    parts += [f"application credential {c.id}" for c in config.app_credentials]
    if config.metadata_key_lifetime:
        parts.append(f"metadata service keys living {config.metadata_key_lifetime:g} s")
    return "; ".join(parts)


def _quota_text(sim: Simulator) -> str:
    gate = sim.quota
    if gate is None:
        return ""
    shape = ", Retry-After" if gate.retry_after is not False else ""
    shape += "" if gate.limit_stated else ", limit not stated"
    changes = "".join(f", then {c.quota} after {c.after:g} s" for c in gate.pending)
    return f"; quota {gate.model.describe()}{shape}{changes}"


async def _serve(args: argparse.Namespace) -> int:
    from .server import Simulator  # aiohttp.web: only when serving

    if args.no_auth and (args.user or args.access_key or args.app_credential or args.metadata_key_lifetime):
        print("simulator: --no-auth accepts every request: drop --user/--access-key/"
              "--app-credential/--metadata-key-lifetime, or --no-auth",
              file=sys.stderr, flush=True)
        return 2
    try:
        sim = Simulator(config_from_args(args))
    except (ValueError, OSError) as exc:
        print(f"simulator: {exc}", file=sys.stderr, flush=True)
        return 2
    try:
        url = await sim.start(args.host, args.port)
    except OSError as exc:
        reason = exc.strerror or exc
        print(f"simulator: cannot listen on {args.host}:{args.port}: {reason}", file=sys.stderr, flush=True)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C still raises
            loop.add_signal_handler(sig, stop.set)
    print(
        f"simulator listening on {url} (project {sim.config.project_id}, {len(sim.snapshots)} snapshots; "
        f"{_auth_text(sim.config)}{_quota_text(sim)})",
        file=sys.stderr,
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await sim.stop()
        # Before the loop closes its wake-up pipe: a signal arriving after that (a second
        # SIGTERM) printed "Exception ignored ... Bad file descriptor"; now it ends the process
        # quietly, as it would without a loop.
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(sig)
    return 0


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT/SIGTERM; 0 on a clean stop."""
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:
        return 0
