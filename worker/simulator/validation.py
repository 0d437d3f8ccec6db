"""The update body's rules, with Cinder's jsonschema-style messages.

Cinder validates `{"snapshot": {name?, description?, display_name?, display_description?}}` with
additionalProperties false and at least one field. EVS counts the 255 limit in UTF-8 bytes (the
seed), Cinder in characters; bytes are the stricter rule, so that is what we enforce. Cinder also
accepts null; the seed says String, so null is refused here.
"""

from __future__ import annotations

from typing import Any

MAX_BYTES = 255
FIELDS = ("name", "description", "display_name", "display_description")
_ALLOWED = frozenset(FIELDS)


class InvalidBody(ValueError):
    """Answered as 400 badRequest with this message."""


def _extras(found: list[str]) -> str:
    names = ", ".join(repr(k) for k in found)
    return f"Additional properties are not allowed ({names} {'was' if len(found) == 1 else 'were'} unexpected)"


def _at(path: str, value: Any, message: str) -> InvalidBody:
    # Cinder's wording: "Invalid input for field/attribute %(path)s. Value: %(value)s. %(message)s"
    return InvalidBody(f"Invalid input for field/attribute {path}. Value: {value}. {message}")


def validate_update(doc: Any) -> dict[str, str]:
    """The changes to apply ({'name': .., 'description': ..}, only the ones given)."""
    if not isinstance(doc, dict):
        raise InvalidBody(f"{doc!r} is not of type 'object'")
    extra = [k for k in doc if k != "snapshot"]
    if extra:
        raise InvalidBody(_extras(extra))
    if "snapshot" not in doc:
        raise InvalidBody("'snapshot' is a required property")
    snap = doc["snapshot"]
    if not isinstance(snap, dict):
        raise _at("snapshot", snap, f"{snap!r} is not of type 'object'")
    extra = [k for k in snap if k not in _ALLOWED]
    if extra:
        raise _at("snapshot", snap, _extras(extra))
    if not snap:
        raise _at("snapshot", snap, "{} is not valid under any of the given schemas")
    for key, value in snap.items():
        if not isinstance(value, str):
            raise _at(key, value, f"{value!r} is not of type 'string'")
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
            raise _at(key, value, f"{value!r} is not valid UTF-8") from None
        if size > MAX_BYTES:
            raise _at(key, value, f"{value!r} is too long")
    changes: dict[str, str] = {}
    # name wins over display_name when both are sent; same for description.
    for field, alias in (("name", "display_name"), ("description", "display_description")):
        if field in snap:
            changes[field] = snap[field]
        elif alias in snap:
            changes[field] = snap[alias]
    return changes
