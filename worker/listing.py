"""Every snapshot of a project, page by page (limit/marker), each page through the retry loop: the
listing behind `--skip-unchanged` and `plan`. Ends on an empty page, not a short one (a server may
cap pages below the limit asked for), and refuses a listing whose pages do not advance (a server
that ignores `marker` would otherwise be paged forever)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from .api.client import Answer, ListingError, SnapshotApi
from .api.errors import ErrorInfo
from .retry import Ending, Retrier

PAGE_SIZE = 1000  # the API's largest page


class ListingStopped(ListingError):
    """The job began to stop while listing: not a failure of the listing."""

    def __init__(self) -> None:
        super().__init__(Answer(None, error=ErrorInfo("stopped", "the job is stopping")))


async def list_snapshots(api: SnapshotApi, retrier: Retrier, project_id: str,
                         filters: dict[str, str] | None = None,
                         page_size: int = PAGE_SIZE) -> AsyncIterator[dict[str, Any]]:
    """Raises ListingError when a page fails for good, ListingStopped when the job stops.
    Items that are not snapshot objects (no string id) are skipped."""
    marker: str | None = None
    while True:
        page = await _page(api, retrier, project_id, page_size, marker, filters or {})
        if not page:
            return
        last = page[-1].get("id") if isinstance(page[-1], dict) else None
        if not isinstance(last, str) or last == marker:
            raise ListingError(Answer(200, error=ErrorInfo(
                "bad_listing", "the listing pages do not advance (marker ignored?)")))
        for item in page:
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                yield item
        marker = last


async def _page(api: SnapshotApi, retrier: Retrier, project_id: str, limit: int,
                marker: str | None, filters: dict[str, str]) -> list[Any]:
    async def send() -> Answer:
        answer, _ = await api.list_page(project_id, limit, marker, **filters)
        return answer

    tried = await retrier.call(send, what="list", project_id=project_id)
    if tried.ending is Ending.OK and tried.answer is not None:
        payload: list[Any] = tried.answer.payload
        return payload
    if tried.answer is None or tried.ending is Ending.STOPPED:
        raise ListingStopped()
    raise ListingError(tried.answer)
