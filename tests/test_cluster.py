"""Redis Cluster (docs/contract.md, "Running": PERMITBUS_REDIS_CLUSTER_URL): the same services on a
local cluster of three primaries and three replicas (tests/cluster.py, one for the session).

* the end-to-end situations of the policy office and ``permitbus up`` end to end, every
  entitlement's outlet checked, exactly as on one server;
* the kill -9 chaos test: the outlets equal an undisturbed run on one server;
* a partition's hash slot migrated to another primary in the middle of a burst (MOVED/ASK while
  the workers run): nothing lost or doubled;
* a graceful failover of a primary to its replica mid-run: nothing lost or doubled, the workers
  carry on;
* the ACL file of ``permitbus acl`` on every node of a cluster of its own: set-up, ``permitbus up``
  and the departments under their own users, each department refused what is not its own.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import pathlib
import secrets

import pytest
from redis.crc import key_slot
from redis.exceptions import NoPermissionError

from services.runtime import topology as t
from services.runtime.acl import OPTIONAL, REQUIRED
from services.runtime.redis import connect, each_primary, ensure_groups, load_functions, LIBRARY
from services.runtime.settings import Settings
from services.runtime.setup import run_setup, setup
from tests import chaos
from tests.aclredis import ADMIN, write_acl
from tests.cluster import LocalCluster
from tests import test_process as process_tests
from tests import test_situations as situation_tests

pytestmark = pytest.mark.slow


@pytest.fixture
async def rc(cluster):
    r = connect(cluster.url, cluster=True)
    await load_functions(r)
    await ensure_groups(r)
    yield r
    await r.aclose()


@pytest.fixture
def csettings(cluster) -> Settings:
    # PERMITBUS_REDIS_URL points nowhere: on a cluster it is ignored (docs/contract.md, "Running")
    return Settings(redis_cluster_url=cluster.url, redis_url="redis://127.0.0.1:1/0", partitions=4, batch_size=500,
                    today=dt.date(2026, 11, 28), scheduler_interval_s=0.05, lease_ttl_ms=1500)


def test_partitions_and_outlets_spread_over_the_primaries(cluster):
    """What the tests below rely on: the four partitions and the outlets are not all on one node."""
    owners = {cluster.owner(key_slot(t.evt(p).encode())).id for p in range(4)}
    assert len(owners) >= 2
    outlets = {cluster.owner(key_slot(o.stream.encode())).id for o in t.OUTLETS.values()}
    assert len(outlets) >= 2


async def test_setup_loads_the_library_on_every_primary_and_checks_each(cluster):
    r = connect(cluster.url, cluster=True)
    try:
        report = await setup(r)
        primaries = [n for n in cluster.nodes() if n.primary]
        loaded = [c for c in report.changed if c.startswith(f"loaded the function library {LIBRARY} on ")]
        assert len(loaded) == len(primaries) == 3
        assert all(libs for libs in (await each_primary(r, "FUNCTION LIST", "LIBRARYNAME", LIBRARY)).values())
        # every node's configuration is checked: the test nodes run without AOF, each is named
        assert len([a for a in report.advice if a.startswith("appendonly is off on ")]) == 3
        again = await setup(r)
        assert not any(c.startswith("loaded") for c in again.changed)
    finally:
        await r.aclose()


# -- a: the end-to-end policy scenarios --------------------------------------------------------------
# One situation of each file (every entitlement), with the multi-step ones whose later days the
# scheduler ticks (education, employment, medins, permits, settlement).
CHOSEN = {"civil", "contributions", "health", "housing", "permits"}
E2E = [s for s in situation_tests.E2E
       if len(s.steps) > 1 or pathlib.Path(s.file).stem in CHOSEN or "decided again" in s.name]
E2E = list({pathlib.Path(s.file).stem + str(len(s.steps)): s for s in E2E}.values())


def test_the_chosen_situations_cover_every_entitlement():
    assert {pathlib.Path(s.file).stem for s in E2E} >= {"civil", "education", "employment", "health", "housing",
                                                         "medins", "settlement", "permits", "contributions"}


@pytest.mark.parametrize("situation", E2E, ids=[f"{pathlib.Path(s.file).stem}: {s.name}" for s in E2E])
async def test_situation_end_to_end_on_a_cluster(rc, csettings, situation):
    await situation_tests.test_situation_end_to_end(rc, csettings, situation)


async def test_up_end_to_end_on_a_cluster(rc, csettings, cluster, monkeypatch):
    """``permitbus up`` (a process per worker) with only PERMITBUS_REDIS_CLUSTER_URL telling it
    where Redis is: every outlet as on one server, and a clean stop on SIGTERM."""
    monkeypatch.setenv("PERMITBUS_REDIS_CLUSTER_URL", cluster.url)
    # start() sets PERMITBUS_REDIS_URL to its first argument: a dead address, ignored on a cluster
    await process_tests.test_up_end_to_end_and_sigterm(rc, csettings, "redis://127.0.0.1:1/0")


# -- b, c, d: kill -9, a slot migrated, a primary failed over; compared with one server ---------------
PEOPLE, SEED = 400, 11  # about 16,000 records over the four feeds
_baseline: dict = {}


@pytest.fixture(scope="module")
def inputs():
    return chaos.city(PEOPLE, SEED)


async def baseline(redis_url, inputs) -> chaos.Outcome:
    """The same input through ``permitbus up`` on one server, undisturbed."""
    if "outcome" not in _baseline:
        _baseline["outcome"], _ = await chaos.run(redis_url, inputs)
        assert sum(len(v) for v in _baseline["outcome"].decisions.values()) > 300
    return _baseline["outcome"]


async def burst_begun(r, records: int = 2000) -> None:
    """Until the contribution burst is being published (this many records on its ingress stream)."""
    while await r.xlen(t.FEEDS["hrss:contribution"].ingress) < records:
        await asyncio.sleep(0.005)


def decisions(outcome: chaos.Outcome) -> int:
    return sum(len(v) for v in outcome.decisions.values())


async def test_kill_9_at_random_moments_on_a_cluster(redis_url, cluster, inputs):
    want = await baseline(redis_url, inputs)
    plan = {"psb:permit": 1, "hrss:contribution": 2}
    got, procs = await chaos.run(cluster.url, inputs, chaos.random_kills(chaos.rng(20261201), plan, 0.6),
                                 cluster=True)
    assert procs.kills == 3
    chaos.assert_exact(got, want)
    print(f"cluster kill -9: {chaos.total(inputs):,} records, {procs.kills} kills, {decisions(got):,} decisions "
          "equal to one server's")


async def test_a_partition_slot_migrated_mid_burst(redis_url, cluster, inputs):
    """While the contribution burst is worked through, the hash slot of partition 1 (its
    pictures, positions, events, outboxes, leases) moves to another primary a few keys at a time,
    then the slot of outlet:health (outlet, audit chains, rosters, relay positions), then the
    contribution feed's (its consumer group with entries pending): MOVED and ASK (TRYAGAIN for a
    commit whose keys are split between the two nodes for a moment) are followed; the outlets
    equal one server's."""
    want = await baseline(redis_url, inputs)
    moved: list[tuple[str, int, int, bool]] = []
    tasks: list[asyncio.Task] = []

    async def migrate(r):
        await burst_begun(r)
        for key in (t.evt(1), "outlet:health", "ingress:hrss:contribution"):
            slot = key_slot(key.encode())
            before = cluster.owner(slot).id
            busy = not (await chaos.backlog(r, chaos.PARTITIONS)).idle
            n = await asyncio.to_thread(cluster.migrate_slot, slot, None, 3, 0.02)
            assert cluster.owner(slot).id != before
            moved.append((key, slot, n, busy))

    async def disturb(feed, procs, r):
        if feed == "psb:permit":  # the contribution burst is published next, with this watching
            tasks.append(asyncio.create_task(migrate(r)))
        elif feed == "hrss:contribution":
            await tasks[0]

    redirected = cluster.redirections()
    got, procs = await chaos.run(cluster.url, inputs, disturb, cluster=True)
    redirected = cluster.redirections() - redirected
    assert redirected > 0  # the workers were sent to the slots' new nodes
    assert len(moved) == 3 and all(n > 0 for _, _, n, _ in moved), moved
    assert moved[0][3], "the burst was over before the migration began"
    chaos.assert_exact(got, want)
    print(f"cluster slot migration: {[(k, n) for k, _, n, _ in moved]} keys moved mid-burst, {redirected} "
          f"redirections, {decisions(got):,} decisions equal to one server's")


async def test_a_graceful_failover_mid_run(redis_url, cluster, inputs):
    """CLUSTER FAILOVER on the replica of the primary holding partition 2 and of the one holding the
    contribution feed, while the burst is worked through: the workers follow the new primaries
    (MOVED, UNBLOCKED, a closed connection: outages, waited out) and carry on; nothing lost or
    doubled."""
    want = await baseline(redis_url, inputs)
    done: list[tuple[int, int, bool]] = []
    tasks: list[asyncio.Task] = []

    async def fail_over(r):
        await burst_begun(r)
        for key in (t.evt(2), "ingress:hrss:contribution"):
            old = cluster.owner(key_slot(key.encode()))
            if any(o == old.port for o, _, _ in done):
                continue  # that primary has already failed over
            busy = not (await chaos.backlog(r, chaos.PARTITIONS)).idle
            new = await asyncio.to_thread(cluster.failover, old)
            assert cluster.owner(key_slot(key.encode())).id == new.id
            done.append((old.port, new.port, busy))

    async def disturb(feed, procs, r):
        if feed == "psb:permit":
            tasks.append(asyncio.create_task(fail_over(r)))
        elif feed == "hrss:contribution":
            await tasks[0]

    got, procs = await chaos.run(cluster.url, inputs, disturb, cluster=True, PERMITBUS_LOG_LEVEL="INFO")
    assert done and done[0][2], done
    assert procs.kills == 0  # the same processes throughout
    chaos.assert_exact(got, want)
    log = b"\n".join(procs.logs).decode()
    assert "stopped:" not in log, log[-3000:]
    print(f"cluster failover: {len(done)} primaries failed over mid-burst, {decisions(got):,} decisions equal "
          "to one server's")


async def test_operators_commands_on_a_cluster(rc, csettings, cluster):
    """The operators' and auditors' commands and the read API against the cluster, each a process
    (or the app) given only PERMITBUS_REDIS_CLUSTER_URL: status, figures, trace, explain, audit
    verify and export, rekey --check, retick, dlq list, /metrics and a roster read."""
    import json
    import subprocess
    import sys

    import httpx

    from services.outlets.api import create_app
    from tests.conftest import publish
    from tests.harness import drain, services
    from tests.people import make_id, permit

    who = make_id("19900101")
    await publish(rc, "psb:permit", permit("QF", who, district="320111", ywlsh="GA-CLUSTER"))
    async with services(csettings):
        await drain(rc, csettings)

    def cli(*args: str, expect=(0,)) -> str:
        env = {**__import__("os").environ, "PERMITBUS_REDIS_CLUSTER_URL": cluster.url,
               "PERMITBUS_REDIS_URL": "redis://127.0.0.1:1/0", "PERMITBUS_TODAY": "2026-11-28",
               "PERMITBUS_PARTITIONS": "4"}
        done = subprocess.run([sys.executable, "-m", "services.cli", *args], env=env, capture_output=True, timeout=60)
        assert done.returncode in expect, (args, done.stdout.decode()[-1500:], done.stderr.decode()[-1500:])
        return done.stdout.decode()

    status = json.loads(cli("status", "--json", expect=(0, 1)))  # 1: no worker runs now (STALLED is a verdict)
    assert status["records"]["psb:permit"]["accepted"] == 1 and status["redis"]["used_memory_bytes"] > 0
    assert status["deliveries"]["outlet:health"] == 1
    assert "320111" in cli("figures", "--json") or "玄武" in cli("figures")
    assert "decided" in cli("trace", "psb:permit", "GA-CLUSTER")
    assert "eligible" in cli("explain", who, "health.family_doctor").lower()
    assert who not in cli("explain", who, "health.family_doctor")  # masked
    cli("audit", "verify")
    out = cli("audit", "export", "--from", "2000-01-01", "--to", "2100-01-01", "--outlet", "health")
    assert out.strip()
    cli("rekey", "--check")
    assert "1 people" in cli("retick")
    assert "0 entries" in cli("dlq", "list")
    app = create_app(csettings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        metrics = await client.get("/metrics")
    assert metrics.status_code == 200 and "permitbus_records_total" in metrics.text


# -- access: the ACL file of `permitbus acl` on every node --------------------------------------
async def test_up_and_departments_under_their_users_on_an_acl_cluster(redis_url, inputs, tmp_path):
    """docs/contract.md, "Access", on a cluster: every node loads the same ACL file (``default``
    off). Set-up runs as ``pb-setup``, ``permitbus up`` as ``pb-up`` (a cluster client's
    ``CLUSTER SLOTS``/``COMMAND`` included), each department publishes its feed as its own user,
    and the outlets equal one server's. Then each department user, through a cluster client that
    finds its keys on whichever node holds them, reads its own outlet and is refused another
    department's outlet, a picture and another feed's ingress."""
    want = await baseline(redis_url, inputs)
    passwords = {u: secrets.token_hex(12) for u in (*REQUIRED, *OPTIONAL, ADMIN)}
    acl = write_acl(tmp_path, passwords)
    nodes = tmp_path / "nodes"
    nodes.mkdir()
    acl_cluster = LocalCluster(nodes, primaries=3, replicas=0, aclfile=acl, auth=(ADMIN, passwords[ADMIN])).start()

    def url(user: str) -> str:
        return f"redis://{user}:{passwords[user]}@127.0.0.1:{acl_cluster.ports[0]}/0"

    admin = connect(url(ADMIN), cluster=True)
    try:
        assert await run_setup(Settings(redis_cluster_url=url("pb-setup"), redis_url="redis://127.0.0.1:1/0")) == 0
        procs = chaos.Procs("redis://127.0.0.1:1/0", extra_env={"PERMITBUS_REDIS_CLUSTER_URL": url("pb-up")})
        procs.start()
        try:
            for feed in chaos.FEED_ORDER:
                dept = connect(url(f"dept-{feed.split(':')[0]}"), cluster=True)
                await chaos.publish(dept, feed, inputs[feed])
                await dept.aclose()
                await chaos.wait_idle(admin, procs=procs)
        finally:
            codes = procs.stop()
        logs = b"\n".join(procs.logs).decode()
        assert codes == [0], logs[-3000:]
        assert "NOPERM" not in logs and passwords["pb-up"] not in logs, logs[-3000:]
        chaos.assert_exact(await chaos.collect(admin), want)

        picture = t.people(0)
        for dept, outlet in t.DEPARTMENT_OUTLETS.items():
            d = connect(url(f"dept-{dept}"), cluster=True)
            other_outlet = next(o for x, o in t.DEPARTMENT_OUTLETS.items() if x != dept)
            other_feed = next(f for f in t.FEEDS.values() if f not in t.department_feeds(dept))
            try:
                got = await d.xread({outlet: "0"}, count=100_000)
                assert sum(len(entries) for _, entries in got) == len(want.decisions[outlet])
                for command in (("XRANGE", other_outlet, "-", "+"), ("HGETALL", picture),
                                ("XADD", other_feed.ingress, "*", "payload", "{}")):
                    with pytest.raises(NoPermissionError):
                        await d.execute_command(*command)
            finally:
                await d.aclose()
    finally:
        await admin.aclose()
        acl_cluster.stop()
