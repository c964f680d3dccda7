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

from linkprobe.engine.outcome import ErrorKind, Outcome, ProbeResult

OUTCOMES = tuple(o.value for o in Outcome)  # ok, broken, unsupported, cancelled
PERMANENT_STATUSES = (301, 308)
# A result that ended in a redirect loop or too many redirects is broken: no final URL to update to.
ENDLESS = (ErrorKind.REDIRECT_LOOP.value, ErrorKind.TOO_MANY_REDIRECTS.value)


class Redirect(StrEnum):
    PERMANENT = "permanent"
    TEMPORARY = "temporary"


def redirect_rule(first_hop: int | None, error_kind: str | None) -> Redirect | None:
    """permanent, temporary, or None when the URL answered without redirecting, never did, or
    ended in a loop (ENDLESS): the rule, on the link's first hop status and its error kind."""
    if first_hop is None or error_kind in ENDLESS:
        return None
    return Redirect.PERMANENT if first_hop in PERMANENT_STATUSES else Redirect.TEMPORARY


def redirect_of(result: ProbeResult) -> Redirect | None:
    first = result.redirects[0].status_code if result.redirects else None
    return redirect_rule(first, None if result.error is None else result.error.kind.value)


def redirect_of_dict(data: Mapping[str, Any]) -> Redirect | None:
    """The same rule on a result's to_dict() form (the stores' JSON)."""
    hops: Sequence[Mapping[str, Any]] = data.get("redirects") or ()
    return redirect_rule(hops[0]["status_code"] if hops else None, (data.get("error") or {}).get("kind"))
