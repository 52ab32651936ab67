"""The department's PostgreSQL: the tables, the guarded upsert, the position that moves with it.

docs/contract.md, "Departments' side": ``permitbus_decision`` (one row per entitlement, subject and
application, ``''`` for a roster entitlement, holding the latest decision) and
``permitbus_follow_position`` (``outlet`` -> the outlet entry id applied up to), created if absent.
Two more tables of the follower's own, beside them:

* ``permitbus_follow_snapshot``: ``outlet`` -> the outlet position a snapshot in progress started
  from (``base``), written before the rosters are read and removed in the snapshot's own
  transaction. A follower killed during a snapshot starts the next one from the same base, so the
  rows it ends with are those of the run that was not killed (``services/follow/snapshot.py``).
* ``permitbus_follow_rejected``: outlet entries that make no row (``rows.py``), with the reason:
  a malformed entry never stops the follower, and never passes unnoticed.

Invariants:
* Rows and position change in one transaction (``commit_batch``, ``snapshot.take``); the position
  moves only from the value this follower read (compare-and-set), so two writers cannot both
  apply the same stretch unnoticed.
* A row changes only for a higher ``version`` (``UPSERT``): applying the same decisions again, in
  any order, leaves the table as it was. This is what makes a snapshot overlapping the outlet,
  and a batch read again after a kill, harmless.
* One follower per outlet and database: a session advisory lock (``lock``), released by
  PostgreSQL when the session ends, also when the process was killed.
* ``synchronous_commit = off`` for this session: a PostgreSQL crash may lose the last commits,
  but rows and position together, so the follower reads those entries again from the outlet.
  Consistency does not depend on it; it spares a WAL flush per batch.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from services.follow.rows import Rejected, Row

DECISION, POSITION = "permitbus_decision", "permitbus_follow_position"
SNAPSHOT, REJECTED, STAGING = "permitbus_follow_snapshot", "permitbus_follow_rejected", "permitbus_staging"
COLUMNS = ("entitlement", "subject_id", "application_id", "status", "district", "priority", "version",
           "decision_id", "decided_at", "payload")

DDL = (
    f"""CREATE TABLE IF NOT EXISTS {DECISION} (
        entitlement    text        NOT NULL,
        subject_id     text        NOT NULL,
        application_id text        NOT NULL,  -- '' for a roster entitlement
        status         text        NOT NULL,  -- eligible | ineligible | revoked
        district       text,
        priority       boolean     NOT NULL,
        version        bigint      NOT NULL,
        decision_id    text        NOT NULL,
        decided_at     timestamptz NOT NULL,
        payload        jsonb       NOT NULL,  -- the decision as received
        PRIMARY KEY (entitlement, subject_id, application_id))""",
    f"CREATE TABLE IF NOT EXISTS {POSITION} (outlet text PRIMARY KEY, position text NOT NULL)",
    f"""CREATE TABLE IF NOT EXISTS {SNAPSHOT} (
        outlet text PRIMARY KEY, base text NOT NULL, started_at timestamptz NOT NULL DEFAULT now())""",
    f"""CREATE TABLE IF NOT EXISTS {REJECTED} (
        outlet text NOT NULL, entry_id text NOT NULL, reason text NOT NULL, payload bytea,
        rejected_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (outlet, entry_id))""",
)

# Staged rows move into the table in one statement, which also empties the staging table (a
# snapshot stages page after page in one transaction). Keys are unique within a stage (``dedupe``):
# ON CONFLICT may not touch one row twice in a statement.
UPSERT = f"""WITH staged AS (DELETE FROM {STAGING} RETURNING *)
    INSERT INTO {DECISION} AS t SELECT * FROM staged
    ON CONFLICT (entitlement, subject_id, application_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS[3:])}
    WHERE t.version < EXCLUDED.version"""


class PositionMoved(RuntimeError):
    """The stored position is not the one this follower read: another writer moved it."""


async def connect(url: str) -> psycopg.AsyncConnection:
    """A session for the follower: autocommit outside explicit transactions, the tables in place,
    a staging table of its own (temporary: nothing of it outlives the session)."""
    extra = {} if "connect_timeout" in url else {"connect_timeout": 10}  # a host that never answers
    conn = await psycopg.AsyncConnection.connect(url, autocommit=True, application_name="permitbus follow", **extra)
    await conn.execute("SET synchronous_commit = off")
    async with conn.transaction():
        # two followers (of two outlets) creating the tables at once would collide in pg_type
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('permitbus follow: tables'))")
        for statement in DDL:
            await conn.execute(statement)
    await conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} (LIKE {DECISION}) ON COMMIT DELETE ROWS")
    return conn


async def lock(conn: psycopg.AsyncConnection, outlet: str) -> bool:
    """Take the outlet's follower lock for this session (False: another session holds it)."""
    cur = await conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (f"permitbus follow: {outlet}",))
    return bool((await cur.fetchone())[0])


async def position(conn: psycopg.AsyncConnection, outlet: str) -> str | None:
    cur = await conn.execute(f"SELECT position FROM {POSITION} WHERE outlet = %s", (outlet,))
    row = await cur.fetchone()
    return row[0] if row else None


async def snapshot_base(conn: psycopg.AsyncConnection, outlet: str) -> str | None:
    """The base of a snapshot that was started and never finished (the follower was stopped)."""
    cur = await conn.execute(f"SELECT base FROM {SNAPSHOT} WHERE outlet = %s", (outlet,))
    row = await cur.fetchone()
    return row[0] if row else None


async def start_snapshot(conn: psycopg.AsyncConnection, outlet: str, base: str) -> None:
    """Record (committed at once) that a snapshot from ``base`` is under way."""
    await conn.execute(f"INSERT INTO {SNAPSHOT} (outlet, base) VALUES (%s, %s) ON CONFLICT (outlet) DO UPDATE "
                       "SET base = EXCLUDED.base, started_at = now()", (outlet, base))


def dedupe(rows: list[Row]) -> list[Row]:
    """The highest version of each key, the first of them on a tie: what the guarded upsert keeps
    of them one at a time, so the table does not depend on where batches begin and end."""
    best: dict[tuple[str, str, str], Row] = {}
    for row in rows:
        seen = best.get(row.key)
        if seen is None or row.version > seen.version:
            best[row.key] = row
    return list(best.values())


async def stage(conn: psycopg.AsyncConnection, rows: list[Row]) -> None:
    """Upsert ``rows`` (keys unique) inside the caller's transaction: COPY, then one statement."""
    if not rows:
        return
    async with conn.cursor() as cur:
        async with cur.copy(f"COPY {STAGING} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                await copy.write_row(row.columns())
        await cur.execute(UPSERT)


async def apply(conn: psycopg.AsyncConnection, outlet: str, rows: list[Row], rejected: list[Rejected]) -> list[Rejected]:
    """Upsert ``rows`` inside the caller's transaction; when PostgreSQL refuses the lot for what
    one of them holds (a ``DataError``: ``\\u0000`` in a jsonb string), find it one row at a time
    (a savepoint each) and reject it. Returns ``rejected`` with those added."""
    try:
        async with conn.transaction():  # a savepoint: the caller's transaction survives a refusal
            await stage(conn, dedupe(rows))
    except psycopg.DataError:
        rejected = list(rejected)
        for row in rows:  # all of them, in order: the one refused may have hidden another of its key
            try:
                async with conn.transaction():
                    await stage(conn, [row])
            except psycopg.DataError as exc:
                reason = f"refused by PostgreSQL: {exc.sqlstate} {(exc.diag.message_primary or '')[:200]}"
                rejected.append(Rejected(row.source, reason, row.payload.encode()))
    return rejected


async def reject(conn: psycopg.AsyncConnection, outlet: str, rejected: list[Rejected]) -> None:
    if rejected:
        async with conn.cursor() as cur:
            await cur.executemany(
                f"INSERT INTO {REJECTED} (outlet, entry_id, reason, payload) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (outlet, entry_id) DO NOTHING",
                [(outlet, x.entry_id, x.reason, x.payload) for x in rejected])


async def move(conn: psycopg.AsyncConnection, outlet: str, old: str, new: str) -> None:
    """Move the position from ``old`` (compare-and-set) inside the caller's transaction."""
    cur = await conn.execute(f"UPDATE {POSITION} SET position = %s WHERE outlet = %s AND position = %s",
                             (new, outlet, old))
    if cur.rowcount != 1:
        raise PositionMoved(f"{outlet}: the stored position is no longer {old}")


async def commit_batch(conn: psycopg.AsyncConnection, outlet: str, old: str, new: str, rows: list[Row],
                       rejected: list[Rejected]) -> list[Rejected]:
    """One batch of the outlet, ``(old, new]``: its rows, its rejects and the position, together.
    Returns the entries rejected (those PostgreSQL refused included)."""
    async with conn.transaction():
        rejected = await apply(conn, outlet, rows, rejected)
        await reject(conn, outlet, rejected)
        await move(conn, outlet, old, new)
    return rejected


async def replace(conn: psycopg.AsyncConnection, entitlements: list[str]) -> None:
    """Inside a snapshot's transaction: the outlet's rows go (they are read again from the rosters)."""
    await conn.execute(sql.SQL("DELETE FROM {} WHERE entitlement = ANY(%s)").format(sql.Identifier(DECISION)),
                       (entitlements,))


async def finish_snapshot(conn: psycopg.AsyncConnection, outlet: str, base: str) -> None:
    """Inside the snapshot's transaction: the position is its base, and no snapshot is under way."""
    await conn.execute(f"INSERT INTO {POSITION} (outlet, position) VALUES (%s, %s) ON CONFLICT (outlet) "
                       "DO UPDATE SET position = EXCLUDED.position", (outlet, base))
    await conn.execute(f"DELETE FROM {SNAPSHOT} WHERE outlet = %s", (outlet,))
