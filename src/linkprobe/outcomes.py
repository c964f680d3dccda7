"""How a result is shown: its outcome word and its redirect, one rule for the CLI, the API and the UI.

The outcome is the engine's classifier (`ProbeResult.outcome`: ok, broken, unsupported,
cancelled). A redirect is `permanent` when the link's own answer (the first hop) is 301 or 308:
the link should be updated to the final URL; else `temporary`. The UI reads both rules from the
API (`GET /api/v1/service`), so they are declared here only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from linkprobe.engine import outcome
from linkprobe.engine.outcome import ErrorKind, Outcome, ProbeResult

OUTCOMES = tuple(o.value for o in Outcome)  # ok, broken, unsupported, cancelled
APART = tuple(kind.value for kind in outcome.APART)  # error kinds that are neither ok nor broken
PERMANENT_STATUSES = (301, 308)
# A result that ended in a redirect loop or too many redirects is broken: no final URL to update to.
ENDLESS = (ErrorKind.REDIRECT_LOOP.value, ErrorKind.TOO_MANY_REDIRECTS.value)


class Redirect(StrEnum):
    PERMANENT = "permanent"
    TEMPORARY = "temporary"


def redirect_of_status(first_hop: int | None) -> Redirect | None:
    if first_hop is None:
        return None
    return Redirect.PERMANENT if first_hop in PERMANENT_STATUSES else Redirect.TEMPORARY


def redirect_of(result: ProbeResult) -> Redirect | None:
    """permanent, temporary, or None when the URL answered without redirecting (or never did)."""
    if result.error is not None and result.error.kind.value in ENDLESS:
        return None
    return redirect_of_status(result.redirects[0].status_code if result.redirects else None)


def redirect_of_dict(data: Mapping[str, Any]) -> Redirect | None:
    """The same rule on a result's to_dict() form (the stores' JSON)."""
    if (data.get("error") or {}).get("kind") in ENDLESS:
        return None
    hops: Sequence[Mapping[str, Any]] = data.get("redirects") or ()
    return redirect_of_status(hops[0]["status_code"] if hops else None)
