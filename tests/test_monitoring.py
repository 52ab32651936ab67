"""deploy/monitoring/: the alert rules pass `promtool check rules` and, alert by alert, `promtool
test rules`; the scrape config passes `promtool check config`; the rules and the Grafana dashboard
use only the metric names of docs/contract.md and of issue 12's notes, in valid PromQL; the dashboard
uses the provisioned datasource.

promtool comes from Debian's `prometheus` package (.ci/run installs it when missing). Without it
these tests skip locally and fail under CI."""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
MON = ROOT / "deploy" / "monitoring"
DASHBOARD = MON / "grafana" / "dashboards" / "permitbus.json"

# docs/contract.md "Operations": the families /metrics serves at least.
CONTRACT_METRICS = {
    "permitbus_stage_backlog", "permitbus_stage_oldest_waiting_seconds", "permitbus_stage_workers",
    "permitbus_records_total", "permitbus_decisions_total", "permitbus_quarantine_entries",
    "permitbus_dead_letter_entries", "permitbus_decision_latency_seconds",
}
# Issue 12's shared notes: the other families, named alike by /metrics (services/ops) and here.
EXTRA_METRICS = {
    "permitbus_redis_used_memory_bytes", "permitbus_redis_maxmemory_bytes", "permitbus_redis_aof_last_rewrite_ok",
    "permitbus_redis_aof_rewrites_total", "permitbus_lease_changes_total", "permitbus_outlet_deliveries_total",
    "permitbus_stage_pending", "permitbus_stage_rate_per_second", "permitbus_stage_verdict",
}
HISTOGRAMS = {"permitbus_decision_latency_seconds"}
KNOWN = (CONTRACT_METRICS | EXTRA_METRICS | {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
         | {"up"})  # Prometheus's own: the scrape of permitbus api

# Required by issue 12 point 7: a stage stalled or down, a backlog growing for 10 minutes, any dead
# letter, a quarantine spike per feed, Redis memory near maxmemory, AOF rewrite failing.
REQUIRED_ALERTS = {"PermitbusStageStalled", "PermitbusStageDown", "PermitbusBacklogGrowing", "PermitbusDeadLetter",
                   "PermitbusQuarantineSpike", "PermitbusRedisMemoryNearMax", "PermitbusAofRewriteFailing"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("promtool missing under CI: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool missing (apt-get install --no-install-recommends prometheus)")
    return path


def run(*args: str, cwd: pathlib.Path = MON) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def rules() -> list[dict]:
    return [r for g in yaml.safe_load((MON / "alerts.yml").read_text())["groups"] for r in g["rules"]]


def dashboard_exprs() -> list[str]:
    board = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in board["panels"] for t in p.get("targets", [])]


_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: what is left once strings, label matchers, ranges,
    grouping lists, function and aggregation calls, keywords and numbers are taken out."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\b[a-z_]+\s*\(", "(", e)  # functions and aggregations
    return {w for w in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", e) if w not in _KEYWORDS}


def test_metric_names_parsed_from_expressions():
    assert metric_names('max by (stage) (deriv(permitbus_stage_backlog{job="x"}[5m])) > 0 and up == 0') == {
        "permitbus_stage_backlog", "up"}
    assert metric_names("histogram_quantile(0.9, max by (le) (rate(permitbus_decision_latency_seconds_bucket[5m])))") \
        == {"permitbus_decision_latency_seconds_bucket"}


def test_promtool_checks_the_rules_and_the_scrape_config():
    out = run("check", "rules", "alerts.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    out = run("check", "config", "prometheus.yml")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "alerts.yml" in yaml.safe_load((MON / "prometheus.yml").read_text())["rule_files"]


def test_promtool_unit_tests_of_every_alert_pass():
    out = run("test", "rules", "tests/alerts.test.yml")
    assert out.returncode == 0 and "SUCCESS" in out.stdout, out.stdout + out.stderr


def test_every_alert_is_tested_firing_and_quiet():
    names = {r["alert"] for r in rules()}
    assert REQUIRED_ALERTS <= names
    cases = [c for t in yaml.safe_load((MON / "tests" / "alerts.test.yml").read_text())["tests"]
             for c in t.get("alert_rule_test", [])]
    fired = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}
    assert fired == names, f"never shown firing: {names - fired}"
    assert quiet == names, f"never shown quiet: {names - quiet}"


def test_a_broken_rule_fails_its_promtool_test(tmp_path):
    """The unit tests would catch a rule that no longer does its job."""
    (tmp_path / "tests").mkdir()
    shutil.copy(MON / "tests" / "alerts.test.yml", tmp_path / "tests")
    for broken in (("permitbus_dead_letter_entries) > 0", "permitbus_dead_letter_entries) > 1"),
                   ('verdict="DOWN"', 'verdict="STALLED"'), ("> 0.05 *", "> 0.5 *")):
        text = (MON / "alerts.yml").read_text()
        assert broken[0] in text
        (tmp_path / "alerts.yml").write_text(text.replace(broken[0], broken[1]))
        out = run("test", "rules", "tests/alerts.test.yml", cwd=tmp_path)
        assert out.returncode != 0 and "FAILED" in out.stdout + out.stderr, broken


def test_rules_and_dashboard_use_only_known_metric_names():
    exprs = [r["expr"] for r in rules()] + dashboard_exprs()
    used = set().union(*(metric_names(e) for e in exprs))
    assert used <= KNOWN, f"unknown metric names: {used - KNOWN}"
    shown = set().union(*(metric_names(e) for e in dashboard_exprs()))
    families = {n.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") for n in shown}
    assert CONTRACT_METRICS | EXTRA_METRICS <= families, f"not on the dashboard: {(CONTRACT_METRICS | EXTRA_METRICS) - families}"


def test_the_contract_names_no_metric_this_does_not_know():
    contract = ROOT.parent / "shared" / "spec" / "CONTRACT.md"
    if not contract.exists():
        pytest.skip("no ../shared/spec/CONTRACT.md beside the checkout")
    operations = contract.read_text(encoding="utf-8").split("## Operations", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"\bpermitbus_[a-z0-9_]+", operations))
    assert named and named <= KNOWN, named - KNOWN


def test_dashboard_expressions_are_valid_promql(tmp_path):
    """promtool parses each dashboard query as a recording rule."""
    group = {"groups": [{"name": "dashboard", "rules": [{"record": f"dashboard:q{i}", "expr": e}
                                                         for i, e in enumerate(dashboard_exprs())]}]}
    (tmp_path / "q.yml").write_text(yaml.safe_dump(group))
    out = run("check", "rules", str(tmp_path / "q.yml"))
    assert out.returncode == 0, out.stdout + out.stderr
    (tmp_path / "bad.yml").write_text(yaml.safe_dump(
        {"groups": [{"name": "d", "rules": [{"record": "d:q", "expr": "max by (stage (permitbus_stage_backlog)"}]}]}))
    assert run("check", "rules", str(tmp_path / "bad.yml")).returncode != 0


def test_dashboard_uses_the_provisioned_datasource():
    prov = MON / "grafana" / "provisioning"
    (ds,) = yaml.safe_load((prov / "datasources" / "permitbus.yml").read_text())["datasources"]
    (provider,) = yaml.safe_load((prov / "dashboards" / "permitbus.yml").read_text())["providers"]
    assert ds["type"] == "prometheus" and provider["type"] == "file" and provider["options"]["path"]
    board = json.loads(DASHBOARD.read_text())
    assert board["uid"] and board["title"]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for p in board["panels"]:
        if p["type"] == "row":
            continue
        assert p["targets"], p["title"]
        for t in [p, *p["targets"]]:
            assert t["datasource"] == {"type": "prometheus", "uid": ds["uid"]}, p["title"]


def test_every_name_the_rules_and_dashboard_query_is_served_by_metrics():
    """The other side of the names above: what /metrics really serves (services/ops/metrics.py, on
    a reading of every kind) holds every family the alert rules and the dashboard select, so an
    alert cannot watch a name nobody writes."""
    from prometheus_client.parser import text_string_to_metric_families

    from services.ops import status as st
    from services.ops.metrics import exposition

    doc = {"stages": [{"stage": "decide", "backlog": 1, "pending": 0, "oldest_waiting_s": 0.5, "rate_per_s": 1.0,
                       "workers": 1, "verdict": "OK"}],
           "records": {"psb:permit": {"accepted": 1, "quarantined": 0, "dead_lettered": 0}},
           "decisions": {"health.family_doctor": {"eligible": 1}}, "quarantine": {"psb:permit": {"BAD_ID": 1}},
           "dead_letters": {"dlq:decider": 0}, "deliveries": {"outlet:health": 1},
           "lease_changes": {"decider": 1},
           "latency": {"buckets": {le: 0 for le in st.LATENCY_MS}, "inf": 0, "sum_s": 0.0, "count": 0},
           "redis": {"used_memory_bytes": 1, "maxmemory_bytes": 0, "aof_last_rewrite_ok": 1, "aof_rewrites": 0}}
    served = set()
    for fam in text_string_to_metric_families(exposition(doc).decode()):
        served |= {s.name for s in fam.samples} | {fam.name}
    queried = set().union(*(metric_names(r["expr"]) for r in rules()), *(metric_names(e) for e in dashboard_exprs()))
    assert queried - {"up"} <= served, f"queried but not served: {queried - {'up'} - served}"
