"""Situation tests (issue 14 point 4; docs/policy.md, "Situation tests"): the policy office's YAML
files of records in and decisions expected, in ``tests/situations/``.

* Every situation of every file, run in process by the one generic runner
  (``services/policy/run.py``: the real normalizer, fold and emission logic) — one test each.
* Coverage: every condition of every rule (each version of it) seen holding and failing, and every
  reason code a rule declares expected by some situation. A rule added without situations fails
  here, with the list of what is missing.
* The situations marked ``end_to_end`` through the running services on the real Redis (records
  published on the ingress streams, the clock moved for later steps, decisions read from the
  outlets, verdicts through the explain path): the same comparison passes.
* The runner can fail: a wrong expectation, a missing or an extra decision, an unexpected
  quarantine each give a diff; files that cannot be run are refused with the file and the
  situation named; ``permitbus policy test`` prints pass/fail, masks IDs, and exits 1 on a failure.
"""

from __future__ import annotations

import datetime as dt
import json
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

from services.outlets.explain import NotExplained, explanations
from services.policy.run import Coverage, StepResult, differences, run
from services.policy.situations import SituationError, load
from services.runtime import topology as t
from services.runtime.clock import ManualClock
from services.runtime.identity import Pseudonymizer
from tests.conftest import publish
from tests.harness import drain, services
from tests.people import make_id

HERE = pathlib.Path(__file__).parent / "situations"
FILES = sorted(HERE.glob("*.yaml"))
SITUATIONS = [s for f in FILES for s in load(f)]


@pytest.mark.parametrize("situation", SITUATIONS, ids=[f"{pathlib.Path(s.file).stem}: {s.name}" for s in SITUATIONS])
def test_situation(situation):
    diff = differences(situation, run(situation))
    assert not diff, "\n".join([f"{situation.file}: {situation.name}", *diff])


def test_every_condition_and_reason_of_every_rule_is_covered():
    cover = Coverage()
    for s in SITUATIONS:
        run(s, cover)
    missing = cover.missing()
    assert not missing, "situations cover none of these (add situations in tests/situations/):\n" + "\n".join(missing)


def test_coverage_names_what_is_missing():
    """Coverage can fail: one file alone leaves the other rules uncovered, each line naming the rule,
    the condition and the way it was never seen; and a reason seen but never expected is listed."""
    cover = Coverage()
    for s in load(HERE / "health.yaml"):
        run(s, cover)
    missing = cover.missing()
    assert not [m for m in missing if m.startswith("health.")]
    assert "housing.security formula: condition 'priority' never seen holding" in missing
    assert "settlement.four_districts: no situation expects the reason DISTRICT_NOT_COVERED" in missing
    assert cover.missing(["health.family_doctor"]) == []


def test_coverage_counts_every_version_of_a_rule():
    """A rule with a later formula (services/rules/versions.py) needs situations for its conditions too."""
    from services.rules import health
    from services.rules.why import Condition

    extra = Condition("lives_in_nanjing", "NO_VALID_PERMIT", "a test-only condition", ())
    with health.FORMULAS.trying(dt.date(2030, 1, 1), health.formula, (*health.CONDITIONS, extra)):
        cover = Coverage()
        for s in load(HERE / "health.yaml"):
            run(s, cover)
        missing = cover.missing(["health.family_doctor"])
    assert "health.family_doctor formula_2030_01: condition 'settled' never seen holding" in missing
    assert "health.family_doctor formula_2030_01: condition 'lives_in_nanjing' (NO_VALID_PERMIT) never seen failing" \
        in missing


def test_the_suite_holds_situations_for_every_file_and_marks_some_end_to_end():
    assert {f.stem for f in FILES} >= {"settlement", "education", "health", "medins", "housing", "parameters"}
    assert len([s for s in SITUATIONS if s.end_to_end]) >= 6


# -- the runner can fail ------------------------------------------------------------------------------
def _one(tmp_path, text: str):
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    (situation,) = load(path)
    return situation, differences(situation, run(situation))


BASE = """
- name: case
  as_of: 2026-11-28
  people: {zhang: 1990-01-01}
  records:
    - psb:permit: {ywlx: QF, sfzh: zhang, jzzbh: P1, jzdqh: "320111", qfrq: 2025-01-01, yxqz: 2027-12-31}
    - hrss:contribution: {AAC002: zhang, AAE002: 202501..202506}
"""


def test_a_wrong_district_is_a_diff_naming_the_step_and_the_entitlement(tmp_path):
    _, diff = _one(tmp_path, BASE + """  expect:
    settlement.four_districts: {status: eligible, district: "320116"}
""")
    assert diff == ["step 1, as of 2026-11-28: settlement.four_districts, decision 1 of 1",
                    "  - expected {status: eligible, district: 320116}",
                    "  + got      {status: eligible, subject: zhang, district: 320111, reasons: []}"]


def test_a_missing_and_an_extra_decision_are_diffs(tmp_path):
    _, diff = _one(tmp_path, BASE + """  expect:
    settlement.four_districts: none
    medins.resident_enrollment: {status: eligible}
""")
    assert "step 1, as of 2026-11-28: settlement.four_districts, 0 decisions expected, 1 made" in diff
    assert "  - expected no decision" in diff
    assert "step 1, as of 2026-11-28: medins.resident_enrollment, 1 decisions expected, 0 made" in diff
    assert "  + got      no decision" in diff


def test_an_entitlement_named_once_is_checked_in_every_step(tmp_path):
    _, diff = _one(tmp_path, BASE + """  expect:
    settlement.four_districts: {status: eligible}
  then:
    - as_of: 2028-01-01
""")
    assert diff[0] == "step 2, as of 2028-01-01: settlement.four_districts, 0 decisions expected, 1 made"


def test_an_unexpected_quarantine_is_a_diff(tmp_path):
    _, diff = _one(tmp_path, BASE.replace('jzdqh: "320111"', 'jzdqh: "320199"') + """  expect:
    settlement.four_districts: none
""")
    assert diff[:2] == ["step 1, as of 2026-11-28: records quarantined",
                        "  + got UNKNOWN_DISTRICT (record 1 (psb:permit): field 'jzdqh' is not one of Nanjing's 11 "
                        "district codes)"]


def test_a_wrong_verdict_is_a_diff(tmp_path):
    _, diff = _one(tmp_path, BASE + """  verdicts:
    medins.resident_enrollment: {eligible: true}
""")
    assert diff == ["step 1, as of 2026-11-28: verdict of medins.resident_enrollment",
                    "  - expected {eligible: true, subject: zhang}",
                    "  + got      {eligible: false, subject: zhang, district: null, reasons: [NOT_SETTLED]}"]


def test_expect_none_means_no_decision_at_all(tmp_path):
    _, diff = _one(tmp_path, BASE + "  expect: none\n")
    assert "step 1, as of 2026-11-28: health.family_doctor, 0 decisions expected, 1 made" in diff


@pytest.mark.parametrize("text, says", [
    ("- name: x\n  as_of: 2026-11-28\n  expect: {health.family_doctor: none}\n  colour: red\n", "unknown key 'colour'"),
    ("- name: x\n  expect: {health.family_doctor: none}\n", "no as_of"),
    ("- name: x\n  as_of: 2026-13-01\n  expect: none\n", "'2026-13-01' is not a date"),
    ("- name: x\n  as_of: 2026-11-28\n  expect: {health.doctor: none}\n", "unknown entitlement 'health.doctor'"),
    ("- name: x\n  as_of: 2026-11-28\n  expect: {health.family_doctor: {status: allowed}}\n", "status 'allowed'"),
    ("- name: x\n  as_of: 2026-11-28\n  expect: {health.family_doctor: {status: eligible, colour: 1}}\n",
     "unknown field 'colour' of a decision"),
    ("- name: x\n  as_of: 2026-11-28\n  records: [{psb:permits: {ywlx: QF}}]\n  expect: none\n",
     "unknown feed 'psb:permits'"),
    ("- name: x\n  as_of: 2026-11-28\n  expect: {}\n", "expects nothing"),
    ("- name: x\n  as_of: 2026-11-28\n  expect: none\n  then: [{as_of: 2026-11-01}]\n", "goes back in time"),
    ("- name: x\n  as_of: 2026-11-28\n  people: {a: '340102199001010001'}\n  expect: none\n", "a's ID number is not valid"),
    ("- name: x\n  as_of: 2026-11-28\n  expect: none\n- name: x\n  as_of: 2026-11-28\n  expect: none\n", "two situations"),
    ("- name: x\n  as_of: 2026-11-28\n  verdicts: {health.family_doctor: {eligible: maybe}}\n", "eligible: true or false"),
    ("- as_of: 2026-11-28\n", "has no name"),
    ("name: x\n", "a list of situations"),
    ("- name: [unclosed\n", "not valid YAML"),
])
def test_a_file_that_cannot_be_run_is_refused_naming_file_and_situation(tmp_path, text, says):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SituationError) as err:
        load(path)
    assert says in str(err.value) and str(path) in str(err.value)


def test_a_what_if_parameter_of_the_wrong_kind_fails_the_situation(tmp_path):
    situation, _ = _one(tmp_path, BASE + "  expect: {settlement.four_districts: {status: eligible}}\n")
    situation.parameters = {"settlement.min_employee_months": {"2027-01-01": "nine"}}
    with pytest.raises(ValueError, match="settlement.min_employee_months 2027-01-01: 'nine' is not a whole number"):
        run(situation)


# -- permitbus policy test ----------------------------------------------------------------------------
def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "services.cli", *args], capture_output=True, text=True, timeout=120,
                          env=env)


def test_policy_test_prints_pass_and_fail_with_ids_masked(tmp_path):
    literal = make_id("19900101")  # an ID written in the file, not a name: masked in the output
    path = tmp_path / "mixed.yaml"
    path.write_text(textwrap.dedent(f"""
        - name: passes
          as_of: 2026-11-28
          people: {{zhang: 1990-01-01}}
          records:
            - psb:permit: {{ywlx: QF, sfzh: zhang, jzzbh: P1, jzdqh: "320111", qfrq: 2025-01-01, yxqz: 2027-12-31}}
          expect: {{health.family_doctor: {{subject: zhang, status: eligible}}}}
        - name: fails
          as_of: 2026-11-28
          people: {{li: "{literal}"}}
          records:
            - psb:permit: {{ywlx: QF, sfzh: "{literal}", jzzbh: P1, jzdqh: "320111", qfrq: 2025-01-01, yxqz: 2027-12-31}}
          expect: {{health.family_doctor: {{status: revoked}}}}
        """), encoding="utf-8")
    done = _cli("policy", "test", str(path))
    assert done.returncode == 1, done.stderr
    assert "  pass  passes" in done.stdout and "  FAIL  fails" in done.stdout
    assert "2 situations: 1 passed, 1 failed" in done.stdout
    assert "subject: li" in done.stdout and literal not in done.stdout + done.stderr
    ok = _cli("policy", "test", *[str(f) for f in FILES], "--coverage")
    assert ok.returncode == 0, ok.stdout[-3000:]
    assert "coverage: every condition and reason code of every rule covered" in ok.stdout
    assert not re.search(r"\d{17}[\dX]", ok.stdout)


def test_policy_test_exits_1_for_a_file_it_cannot_run(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("- name: x\n  as_of: someday\n  expect: none\n", encoding="utf-8")
    done = _cli("policy", "test", str(path))
    assert done.returncode == 1 and "ERROR" in done.stdout and "'someday' is not a date" in done.stdout


# -- end to end on the real Redis ---------------------------------------------------------------------
E2E = [s for s in SITUATIONS if s.end_to_end]


@pytest.mark.parametrize("situation", E2E, ids=[f"{pathlib.Path(s.file).stem}: {s.name}" for s in E2E])
async def test_situation_end_to_end(r, settings, situation):
    """The situation through the running services: its records on the ingress streams, D moved for
    later steps (the scheduler notices), decisions read from the outlets, quarantines from the
    quarantine streams, verdicts through the explain path; compared as in process. Records of one
    person keep their order on one partition; across people (and feeds) the pipeline does not order,
    so decisions are put in the in-process run's order of subjects (each subject's own order kept)."""
    assert not situation.parameters, "end to end runs with the shipped parameter folder"
    local = run(situation)
    clock = ManualClock(situation.steps[0].as_of)
    results: list[StepResult] = []
    seen_out: dict[str, int] = {}
    seen_q: dict[str, int] = {}
    pseudonym = Pseudonymizer(settings.pseudonym_secret())
    async with services(settings, clock=clock) as running:
        for n, step in enumerate(situation.steps):
            if n and step.as_of != clock.today():
                clock.set(step.as_of)
                await running.scheduler.check()
                await drain(r, settings)
            feed_before = None
            for feed, rec, _ in step.records:
                if feed != feed_before and feed_before is not None:
                    await drain(r, settings)  # the feeds are not ordered against each other
                await publish(r, feed, rec)
                feed_before = feed
            await drain(r, settings)
            got = StepResult()
            for o in t.OUTLETS.values():
                entries = await r.xrange(o.stream)
                got.decisions += [json.loads(f[b"payload"]) for _, f in entries[seen_out.get(o.stream, 0):]]
                seen_out[o.stream] = len(entries)
            for feed in t.FEEDS.values():
                entries = await r.xrange(feed.quarantine)
                got.quarantined += [(f[b"reason"].decode(), "") for _, f in entries[seen_q.get(feed.quarantine, 0):]]
                seen_q[feed.quarantine] = len(entries)
            for ent, wants in step.verdicts.items():
                got.verdicts[ent] = [await _verdict(r, settings, pseudonym, ent, w, step.as_of) for w in wants]
            results.append(_arranged(got, local[n], step))
    diff = differences(situation, results)
    assert not diff, "\n".join([f"{situation.file}: {situation.name} (end to end)", *diff])


async def _verdict(r, settings, pseudonym, entitlement: str, want: dict, day: dt.date) -> dict | str:
    try:
        found = await explanations(r, settings.partitions, pseudonym, want["subject"], entitlement, day,
                                   want.get("application"))
    except NotExplained as exc:
        return str(exc)
    if len(found) != 1:
        return f"{len(found)} explanations"
    e = found[0]
    return {"eligible": e["eligible"], "district": e["district"], "reasons": e["reasons"], "priority": e["priority"],
            "subject": want.get("subject"), "application": want.get("application")}


def _arranged(got: StepResult, local: StepResult, step) -> StepResult:
    """The pipeline's decisions of a step in the in-process run's order of (entitlement, subject), each
    subject's own decisions in the pipeline's order; quarantines in the expected order when they are
    the same reasons."""
    order = {}
    for d in local.decisions:
        order.setdefault((d["entitlement"], d["subject_id"]), len(order))
    got.decisions.sort(key=lambda d: order.get((d["entitlement"], d["subject_id"]), len(order)))
    if sorted(r for r, _ in got.quarantined) == sorted(step.quarantined):
        got.quarantined = [(r, "") for r in step.quarantined]
    return got
