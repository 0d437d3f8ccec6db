"""The errors this tool explains in one line. Every one derives from `SnaprelabelError`, whose
message names what went wrong and never a secret; the command line prints it and exits with the
code its kind stands for (worker/exitcodes.py).

    SnaprelabelError
    ├── ConfigError          a setting, flag, file or credential that stops the job before a
    │   │                    request is sent (exit 2)
    │   └── PlanError        a template or selection of `plan` that cannot work (exit 2)
    ├── AuthError            credentials refused, or the identity service unusable (api/auth.py)
    ├── CatalogError         no usable endpoint in the service catalog (api/catalog.py)
    ├── ListingError         listing snapshots failed for good (api/client.py)
    │   └── ListingStopped   the job stopped while listing (listing.py)
    ├── HeaderError          a jobs file whose header cannot be used (sources/columns.py)
    ├── JournalError         a report that cannot be resumed or undone (journal.py)
    ├── RedisUnavailable     Redis unreachable for longer than --redis-wait (queue/redis_link.py)
    │   └── RedisRefused     Redis answered an error to a command the job needs (OOM, a key of
    │                        another type)
    └── RedisLost            Redis lost what it held (queue/redis_link.py)
"""

from __future__ import annotations


class SnaprelabelError(Exception):
    """An error explained in one line that names no secret."""


class ConfigError(SnaprelabelError):
    """A setting, flag or file that makes the job impossible to start (exit code 2)."""
