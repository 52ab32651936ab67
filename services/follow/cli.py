"""``permitbus follow <dept> --into <PostgreSQL URL>``: run the follower until SIGTERM/SIGINT.

Exit status: 0 when stopped (SIGTERM, SIGINT; with ``--once``, when it has caught up), 2 when
refused (a Redis user without rights on the outlet, a wrong token, PostgreSQL refusing the login or
the tables, no API for a snapshot that needs one), 1 for anything else. Stopping takes at most
``STOP_S``: the batch in hand is committed or rolled back, never half applied.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from services.follow.follower import Follower
from services.follow.snapshot import Api, Refused
from services.runtime.redact import redact_url
from services.runtime.settings import Settings

STOP_S = 8.0  # docs/contract.md: stops within 10 s of SIGTERM


async def follow(settings: Settings, dept: str, into: str, api_url: str | None, batch: int, once: bool) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per roster page at INFO
    url = api_url or settings.follow_api
    api = None
    if url:
        token = settings.follow_token.get_secret_value() if settings.follow_token else ""
        if not token:
            print("permitbus follow: PERMITBUS_FOLLOW_TOKEN (the department's API token) is not set", file=sys.stderr)
            return 2
        api = Api(url, token)
    follower = Follower(dept, settings.redis_cluster_url or settings.redis_url, into, api, batch=batch, once=once,
                        cluster=bool(settings.redis_cluster_url))
    task = asyncio.ensure_future(follower.run())
    loop = asyncio.get_running_loop()

    def stop() -> None:
        follower.stop()
        loop.call_later(STOP_S, task.cancel)  # a stuck call must not keep it past the deadline

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)
    try:
        await task
    except asyncio.CancelledError:
        print("permitbus follow: stopped with a call in flight (rolled back)", file=sys.stderr)
    except Refused as exc:
        print(f"permitbus follow: {exc}", file=sys.stderr)
        return 2
    finally:
        if api is not None:
            await api.aclose()
    where = redact_url(into) if "://" in into else "the database"  # a libpq key=value string may hold a password
    print(f"permitbus follow: {follower.outlet} into {where}: {follower.applied} entries applied, "
          f"{follower.rejected} rejected, {follower.snapshots} snapshots", file=sys.stderr)
    return 0
