"""`linkprobe keys create|list|revoke`: API keys, in the store the service uses (SQLite or Redis)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from linkprobe.cli.exits import ExitCode
from linkprobe.settings import Settings
from linkprobe.store.accounts import KeyStore, open_keys


def run_keys(args: argparse.Namespace, settings: Settings) -> int:
    overrides: dict[str, object] = {"redis_url": args.redis_url} if args.redis_url else {}
    if args.db:
        overrides["db"] = Path(args.db)
    settings = settings.model_copy(update=overrides)
    return asyncio.run(_run(args, open_keys(settings)))


async def _run(args: argparse.Namespace, keys: KeyStore) -> int:
    await keys.open()
    try:
        if args.action == "create":
            key, secret = await keys.create(args.name)
            print(f"created key {key.id} ({key.name}); it is shown once, keep it now:")
            print(secret)  # the last line: `linkprobe keys create x | tail -1`
            return ExitCode.OK
        if args.action == "list":
            for key in await keys.all():
                state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
                print(f"{key.id}  {key.created_at:%Y-%m-%d %H:%M}  {state:<24}  {key.name}")
            return ExitCode.OK
        if await keys.revoke(args.id):
            print(f"revoked key {args.id}")
            return ExitCode.OK
        print(f"no active key {args.id}")
        return ExitCode.USAGE  # no such key: bad input
    finally:
        await keys.close()
