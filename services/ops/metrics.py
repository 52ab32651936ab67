"""``GET /metrics`` on ``permitbus api``: Prometheus' text format, no token (docs/contract.md, "Operations").

Every figure is read from Redis at each scrape (``services/ops/status.py``'s ``collect``: a fixed
number of calls per stage and partition), not counted in this process: the counters are kept by
the Lua steps that have the effects, so several workers, restarts and several API processes all
report the same totals, counted since the deployment began. A custom collector turns one reading
into the families below; nothing is registered in the process-wide registry.
"""

from __future__ import annotations

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from services.ops import status as st
from services.runtime import topology as t

FEED_OF_QUARANTINE = {f.quarantine: f.name for f in t.FEEDS.values()}


def families(doc: dict) -> list:
    """The metric families of one ``collect()`` reading, names and labels as docs/contract.md has them,
    plus the operators' extras (pending, rate, verdict, deliveries per outlet, Redis memory, AOF)."""
    stages = doc["stages"]

    def per_stage(name: str, help_: str, key: str) -> GaugeMetricFamily:
        g = GaugeMetricFamily(name, help_, labels=["stage"])
        for s in stages:
            g.add_metric([s["stage"]], s[key])
        return g

    out = [
        per_stage("permitbus_stage_backlog", "Entries waiting at the stage", "backlog"),
        per_stage("permitbus_stage_pending", "Entries read by the stage and not finished", "pending"),
        per_stage("permitbus_stage_oldest_waiting_seconds", "Age of the stage's oldest waiting entry",
                  "oldest_waiting_s"),
        per_stage("permitbus_stage_workers", "Live workers of the stage", "workers"),
        per_stage("permitbus_stage_rate_per_second", "Work done per second over the last minute", "rate_per_s"),
    ]
    verdict = GaugeMetricFamily("permitbus_stage_verdict", "1 for the stage's current verdict, 0 for the others",
                                labels=["stage", "verdict"])
    for s in stages:
        for v in st.VERDICTS:
            verdict.add_metric([s["stage"], v], 1 if s["verdict"] == v else 0)
    out.append(verdict)

    records = CounterMetricFamily("permitbus_records", "Ingress records by what the normalizer made of them, "
                                  "since the deployment began", labels=["feed", "result"])
    for feed, results in doc["records"].items():
        for result in ("accepted", "quarantined", "dead_lettered"):
            records.add_metric([feed, result], results[result])
    out.append(records)

    decisions = CounterMetricFamily("permitbus_decisions", "Decisions delivered to the outlets, since the "
                                    "deployment began", labels=["entitlement", "status"])
    for ent, by_status in doc["decisions"].items():
        for status, n in sorted(by_status.items()):
            decisions.add_metric([ent, status], n)
    out.append(decisions)

    quarantine = GaugeMetricFamily("permitbus_quarantine_entries", "Entries in quarantine now",
                                   labels=["feed", "reason"])
    for feed, reasons in doc["quarantine"].items():
        for reason, n in sorted(reasons.items()):
            quarantine.add_metric([feed, reason], n)
    out.append(quarantine)

    dead = GaugeMetricFamily("permitbus_dead_letter_entries", "Entries on a dead-letter stream now",
                             labels=["stream"])
    for stream, n in doc["dead_letters"].items():
        dead.add_metric([stream], n)
    out.append(dead)

    lat = doc["latency"]
    cumulative, buckets = 0, []
    for le in st.LATENCY_MS:
        cumulative += lat["buckets"][le]
        buckets.append((_le(le), cumulative))
    buckets.append(("+Inf", cumulative + lat["inf"]))
    out.append(HistogramMetricFamily("permitbus_decision_latency_seconds",
                                     "From the ingress entry's time to its decision's outlet entry's time",
                                     buckets=buckets, sum_value=lat["sum_s"]))

    deliveries = CounterMetricFamily("permitbus_outlet_deliveries", "Entries appended to each outlet",
                                     labels=["outlet"])
    for outlet, n in doc["deliveries"].items():
        deliveries.add_metric([outlet], n)
    out.append(deliveries)
    audited = CounterMetricFamily("permitbus_audit_entries", "Decisions written to the audit log with their "
                                  "delivery (equal to permitbus_outlet_deliveries since the audit log began)",
                                  labels=["outlet"])
    for outlet, n in doc.get("audited", {}).items():
        audited.add_metric([outlet], n)
    out.append(audited)

    leases = CounterMetricFamily("permitbus_lease_changes", "Leases acquired (a worker started or took over a "
                                 "dead one's share), since the deployment began", labels=["role"])
    for role, n in doc.get("lease_changes", {}).items():
        leases.add_metric([role], n)
    out.append(leases)

    redis = doc["redis"]
    out += [
        GaugeMetricFamily("permitbus_redis_used_memory_bytes", "Redis used_memory", value=redis["used_memory_bytes"]),
        GaugeMetricFamily("permitbus_redis_maxmemory_bytes", "Redis maxmemory (0: no limit)",
                          value=redis["maxmemory_bytes"]),
        GaugeMetricFamily("permitbus_redis_aof_last_rewrite_ok", "1 when the last AOF rewrite succeeded",
                          value=redis["aof_last_rewrite_ok"]),
        CounterMetricFamily("permitbus_redis_aof_rewrites", "AOF rewrites since Redis started",
                            value=redis["aof_rewrites"]),
    ]
    return out


def _le(ms: int) -> str:
    return repr(ms / 1000)


class _Reading:
    """A collector that yields one reading's families (prometheus-client's custom collector)."""

    def __init__(self, fams: list) -> None:
        self.fams = fams

    def collect(self):
        yield from self.fams


def exposition(doc: dict) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Reading(families(doc)))
    return generate_latest(registry)


def mount(app: FastAPI, r, settings) -> None:
    """Add ``GET /metrics`` (no token) to the API."""

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        doc = await st.collect(r, settings)
        return Response(exposition(doc), media_type=CONTENT_TYPE_LATEST)
