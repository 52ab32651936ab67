"""A real local Redis Cluster for the tests (docs/contract.md, "Running": PERMITBUS_REDIS_CLUSTER_URL).

``LocalCluster`` starts ``primaries`` redis-server processes with ``--cluster-enabled yes`` on free
loopback ports (and ``replicas`` per primary), joins them with ``redis-cli --cluster create`` and
stops them afterwards. The helpers move a hash slot between primaries the way an operator does
(``CLUSTER SETSLOT IMPORTING/MIGRATING``, ``MIGRATE`` in batches, ``SETSLOT NODE``) and fail a
primary over to its replica (``CLUSTER FAILOVER``). No stand-ins: real servers, real redirections.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field

import redis as sync_redis

from services.runtime.localredis import free_port, spawn_redis


def cli(port: int, *args: str, timeout: float = 30) -> str:
    out = subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True, timeout=timeout, check=True)
    return out.stdout.decode()


@dataclass
class Node:
    id: str
    port: int
    primary: bool
    of: str | None  # a replica's primary id
    slots: list[tuple[int, int]] = field(default_factory=list)


class LocalCluster:
    def __init__(self, workdir, primaries: int = 3, replicas: int = 1, node_timeout_ms: int = 5000,
                 aclfile=None, auth: tuple[str, str] | None = None) -> None:
        """``aclfile``: loaded by every node (``default`` off there, so the helpers below log in as
        ``auth``, a (user, password) with every right). Replicas would need ``masteruser``: an ACL
        cluster here has primaries only."""
        assert not (aclfile and replicas), "an ACL-enabled local cluster has no replicas"
        self.workdir = workdir
        self.n, self.replicas, self.node_timeout_ms = primaries, replicas, node_timeout_ms
        self.aclfile = aclfile
        self._auth = ["--user", auth[0], "--pass", auth[1], "--no-auth-warning"] if auth else []
        self.procs: dict[int, subprocess.Popen] = {}
        self.ports: list[int] = []

    def cli(self, port: int, *args: str, timeout: float = 30) -> str:
        return cli(port, *self._auth, *args, timeout=timeout)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self) -> LocalCluster:
        for i in range(self.n * (1 + self.replicas)):
            port = free_port()
            d = self.workdir / f"node{i}"
            d.mkdir(parents=True, exist_ok=True)
            conf = d / "redis.conf"
            conf.write_text("cluster-enabled yes\ncluster-config-file nodes.conf\n"
                            f"cluster-node-timeout {self.node_timeout_ms}\n"
                            f"cluster-port {free_port()}\n"  # port + 10000 may be out of range
                            + (f"aclfile {self.aclfile}\n" if self.aclfile else ""))
            self.procs[port] = spawn_redis(port, str(d), config=str(conf))
            self.ports.append(port)
        self.cli(self.ports[0], "--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports],
            "--cluster-replicas", str(self.replicas), "--cluster-yes", timeout=60)
        self.wait_ok()
        return self

    def wait_ok(self, timeout: float = 30) -> None:
        """Until every node says the cluster is ok and every replica is linked to its primary."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                ok = all("cluster_state:ok" in self.cli(p, "cluster", "info") for p in self.ports)
                if ok and self.replicas:
                    replicas = [n for n in self.nodes() if not n.primary]
                    ok = len(replicas) == self.n * self.replicas and all(
                        "master_link_status:up" in self.cli(n.port, "info", "replication") for n in replicas)
                if ok:
                    return
            except subprocess.CalledProcessError:
                pass
            assert time.monotonic() < deadline, "the local cluster did not become ok"
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()

    # -- what the nodes say ----------------------------------------------------------------------
    def nodes(self) -> list[Node]:
        out = []
        for line in self.cli(self.ports[0], "cluster", "nodes").splitlines():
            parts = line.split()
            if len(parts) < 8 or "fail" in parts[2].split(","):
                continue
            port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
            slots = []
            for s in parts[8:]:
                if s.startswith("["):
                    continue  # a slot being migrated
                a, _, b = s.partition("-")
                slots.append((int(a), int(b or a)))
            out.append(Node(parts[0], port, "master" in parts[2], None if parts[3] == "-" else parts[3], slots))
        return out

    def owner(self, slot: int) -> Node:
        for n in self.nodes():
            if n.primary and any(a <= slot <= b for a, b in n.slots):
                return n
        raise LookupError(slot)

    def redirections(self) -> int:
        """MOVED, ASK and TRYAGAIN replies the nodes have given since they started (INFO errorstats)."""
        n = 0
        for port in self.ports:
            if self.procs[port].poll() is not None:
                continue
            for line in self.cli(port, "info", "errorstats").splitlines():
                if line.startswith(("errorstat_MOVED:", "errorstat_ASK:", "errorstat_TRYAGAIN:")):
                    n += int(line.split("count=")[1].split(",")[0])
        return n

    def flush(self) -> None:
        """Empty every primary (the replicas follow): each test starts from an empty cluster."""
        for n in self.nodes():
            if n.primary:
                self.cli(n.port, "flushall")
                self.cli(n.port, "function", "flush")

    # -- what an operator does -------------------------------------------------------------------
    def migrate_slot(self, slot: int, to: Node | None = None, batch: int = 10, pause_s: float = 0.0) -> int:
        """Move ``slot`` to another primary while clients run: IMPORTING on the target,
        MIGRATING on the source, its keys moved ``batch`` at a time (MIGRATE ... KEYS), then
        SETSLOT NODE on both. Returns the keys moved."""
        src = self.owner(slot)
        dst = to or next(n for n in self.nodes() if n.primary and n.id != src.id)
        s, d = sync_redis.Redis(port=src.port), sync_redis.Redis(port=dst.port)
        try:
            d.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src.id)
            s.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst.id)
            moved = 0
            while keys := s.execute_command("CLUSTER GETKEYSINSLOT", slot, batch):
                s.execute_command("MIGRATE", "127.0.0.1", dst.port, "", 0, 5000, "KEYS", *keys)
                moved += len(keys)
                if pause_s:
                    time.sleep(pause_s)
            for node in (d, s):
                node.execute_command("CLUSTER SETSLOT", slot, "NODE", dst.id)
            for n in self.nodes():  # the other primaries learn it by gossip; told, they know at once
                if n.primary and n.id not in (src.id, dst.id):
                    sync_redis.Redis(port=n.port).execute_command("CLUSTER SETSLOT", slot, "NODE", dst.id)
            return moved
        finally:
            s.close()
            d.close()

    def failover(self, primary: Node, timeout: float = 30) -> Node:
        """A graceful failover: ``CLUSTER FAILOVER`` on a replica of ``primary`` (the primary
        stops writes, the replica catches up, then takes over). Returns the new primary."""
        replica = next(n for n in self.nodes() if n.of == primary.id)
        self.cli(replica.port, "cluster", "failover")
        deadline = time.monotonic() + timeout
        while not next(n for n in self.nodes() if n.id == replica.id).primary:
            assert time.monotonic() < deadline, "the failover did not happen"
            time.sleep(0.05)
        self.wait_ok(timeout)
        return next(n for n in self.nodes() if n.id == replica.id)
