"""What a token's roles let it do to snapshots, for `auth check` and the start of `run`: a
reader-only token passes the credential check (a GET) and then has every PUT refused with 403.

Cinder's default policy (cinder/policies/snapshots.py, cinder 29.0.0):
    volume:update_snapshot   check_str = SYSTEM_ADMIN_OR_PROJECT_MEMBER
        = "rule:xena_system_admin_or_project_member"
        = "(role:admin) or (role:member and project_id:%(project_id)s)"   (policies/base.py)
    volume:get_all_snapshots check_str = SYSTEM_READER_OR_PROJECT_READER (reader may list)
Keystone's default implied roles (admin -> member -> reader) put every implied role in the
token, so an admin's token lists member and reader too. `_member_` is the role of older
deployments whose policy files still grant it; `te_admin` is Huawei Cloud IAM's Tenant
Administrator and `tenant_guest` its read-only Tenant Guest. A cloud's own policy file can grant
other roles: hence a warning, never a refusal.
"""

from __future__ import annotations

from collections.abc import Sequence

CAN_UPDATE = frozenset({"admin", "member", "_member_", "te_admin"})
READ_ONLY = frozenset({"reader", "tenant_guest", "readonly"})


def can_update(roles: Sequence[str]) -> bool:
    return any(role.lower() in CAN_UPDATE for role in roles)


def describe(roles: Sequence[str]) -> str:
    """One line: the roles and what Cinder's default policy lets them do to snapshots."""
    if not roles:
        return "none listed by the token"
    names = ", ".join(roles)
    if can_update(roles):
        return f"{names} (may list and update snapshots)"
    if any(role.lower() in READ_ONLY for role in roles):
        return f"{names} (may list snapshots, not update them)"
    return f"{names} (none of them may update snapshots under Cinder's default policy)"


def warning(roles: Sequence[str]) -> str | None:
    """Why PUTs will likely be refused with 403, or None when a role allows them (or the token
    lists no roles: then nothing is known)."""
    if not roles or can_update(roles):
        return None
    return (f"none of the token's roles ({', '.join(roles)}) may update snapshots under Cinder's "
            "default policy (volume:update_snapshot needs member or admin; Huawei: te_admin): "
            "unless this cloud's policy grants it, every PUT will be refused with 403 and a run "
            "stops after --max-consecutive-auth-failures of them (exit 3)")
