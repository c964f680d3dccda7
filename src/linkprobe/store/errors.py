"""The store's exceptions (under the library's LinkprobeError: a caller catches either).

LinkprobeError (linkprobe.engine.errors)
└── StoreError               the store failed
    ├── StoreUnavailable     the store cannot be reached right now (API 503)
    └── StoreLocked          another process serves this SQLite file
"""

from __future__ import annotations

from linkprobe.engine.errors import LinkprobeError


class StoreError(LinkprobeError):
    """The task store failed."""


class StoreUnavailable(StoreError):
    """The task store cannot be reached; callers may retry later."""


class StoreLocked(StoreError):
    """Another process serves this store's file (SQLite): one serving process per database."""
