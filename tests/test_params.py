"""Every figure a dated parameter (issue 14 point 3; docs/policy.md, "Parameters", "Changing a parameter").

* The shipped folder: one file per parameter a rule declares, each with its reference, readable whole.
* A folder is checked whole: every way a file can be wrong is refused with one line naming the file
  (``params.problems``), and a service refuses to start on it, before it reads any record: a real
  ``permitbus run decider`` process with a broken ``PERMITBUS_PARAMS_DIR`` (and ``up``, ``api``).
* ``permitbus params check [DIR]``: every value with its date, the one in force marked; exit 1 naming
  the file and the problem.
* Rules versioned by date (``services/rules/versions.py``): a test-only later formula is used from its
  date (D for a roster rule, the date of application for an application), its conditions explained,
  and the scheduler decides everyone again on its date.
* A parameter edit end to end, on the real Redis: the folder copied, the services run, the file
  edited (a value from a later date), the services started again; on that date, with no record, the
  scheduler decides everyone again and the decisions change; the pictures keep counts, not verdicts,
  so the months paid since count against the new figure. An edit of a value already in force takes
  effect at the first check after the start.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import shutil
import subprocess
import sys

import pytest

from schemas.picture import Person
from services import rules
from services.picture.picture import Picture
from services.policy.check import check
from services.policy.run import differences, run
from services.policy.situations import load
from services.rules import health, housing, params, settlement
from services.rules.explain import explain_roster
from services.rules.verdict import Verdict
from services.rules.why import SILENT, Condition
from services.runtime import topology as t
from services.runtime.clock import ManualClock
from tests.conftest import publish, read_outlet
from tests.harness import drain, services
from tests.people import contribution, make_id, months, permit

D = dt.date(2026, 11, 28)


@pytest.fixture
def folder(tmp_path):
    """A copy of the shipped parameter folder, to break or edit."""
    dest = tmp_path / "params"
    shutil.copytree(params.DEFAULT_DIR, dest)
    return dest


# -- the shipped folder -------------------------------------------------------------------------------
def test_every_declared_parameter_has_a_file_with_its_reference():
    found, problems = params.problems(params.DEFAULT_DIR)
    assert problems == []
    assert set(found) == set(params.DECLARED) >= {
        "settlement.districts", "settlement.min_employee_months", "education.primary_min_age", "education.max_age",
        "medins.employee_medical_window_months", "housing.per_capita_income_max", "housing.priority_occupations",
        "housing.priority_sectors"}
    for p in found.values():
        assert "宁政办发〔2021〕5号（" in p.reference and "docs/policy.md" in p.reference
        assert p.description and p.unit
    assert found["settlement.districts"].values == (frozenset({"320111", "320116", "320117", "320118"}),)
    assert found["housing.per_capita_income_max"].values == (3000.0, 3300.0)


def test_values_in_force_by_date():
    p = params.get("housing.per_capita_income_max")
    assert [p.at(dt.date.fromisoformat(d)) for d in ("2021-01-01", "2022-06-30", "2022-07-01", "2026-11-28")] == [
        3000, 3000, 3300, 3300]
    f = settlement.MIN_MONTHS.on(D)
    assert (f.value, f.since, f.name) == (6, dt.date(2021, 1, 1), "settlement.min_employee_months")
    with pytest.raises(params.ParameterError, match="no value in force on 2020-12-31"):
        settlement.MIN_MONTHS.on(dt.date(2020, 12, 31))


def test_a_rule_reads_the_folder_in_force_not_a_value_it_kept(folder):
    """``Param.on`` keeps its last answer for the same day, but only for the same folder."""
    assert settlement.MIN_MONTHS.on(D).value == 6
    edited = params.active().amended({"settlement.min_employee_months": {"2026-01-01": 9}})
    with params.using(edited):
        assert settlement.MIN_MONTHS.on(D).value == 9
        assert settlement.MIN_MONTHS.on(dt.date(2025, 12, 31)).value == 6
    assert settlement.MIN_MONTHS.on(D).value == 6


# -- a folder is checked whole ------------------------------------------------------------------------
MONTHS = "settlement.min_employee_months.toml"
DISTRICTS = "settlement.districts.toml"
GOOD = 'description = "d"\nunit = "u"\nreference = "r"\n[values]\n'


@pytest.mark.parametrize("file, text, says", [
    (MONTHS, "this is not = toml = at all", "not valid TOML"),
    (MONTHS, GOOD.replace('reference = "r"\n', "") + "2021-01-01 = 6\n", "'reference' is missing or empty"),
    (MONTHS, GOOD.replace('description = "d"', 'description = " "') + "2021-01-01 = 6\n",
     "'description' is missing or empty"),
    (MONTHS, GOOD + "2021-01-01 = 6\nrefrence = 1\n", "[values] 'refrence' is not a date"),
    (MONTHS, 'refrence = "r"\n' + GOOD + "2021-01-01 = 6\n", "unknown key 'refrence'"),
    (MONTHS, GOOD, "no [values]"),
    (MONTHS, GOOD + "2021-13-01 = 6\n", "'2021-13-01' is not a date"),
    (MONTHS, GOOD + "2022-01-01 = 6\n2021-01-01 = 9\n", "not in ascending order (2021-01-01 after 2022-01-01)"),
    (MONTHS, GOOD + '2021-01-01 = "six"\n', "'six' is not a whole number from 1 to 600"),
    (MONTHS, GOOD + "2021-01-01 = 6.5\n", "6.5 is not a whole number"),
    (MONTHS, GOOD + "2021-01-01 = true\n", "True is not a whole number"),
    (MONTHS, GOOD + "2021-01-01 = 0\n", "0 is not a whole number from 1 to 600"),
    (MONTHS, GOOD + '2021-01-01 = ["6"]\n', "is not a whole number"),
    (DISTRICTS, GOOD + '2021-01-01 = ["320111", "320199"]\n', "'320199' is not one of the Nanjing district codes"),
    (DISTRICTS, GOOD + '2021-01-01 = ["320111", "320111"]\n', "'320111' is listed twice"),
    (DISTRICTS, GOOD + "2021-01-01 = []\n", "is not a list of Nanjing district codes"),
    (DISTRICTS, GOOD + '2021-01-01 = "320111"\n', "is not a list of Nanjing district codes"),
    (DISTRICTS, GOOD + "2021-01-01 = [320111]\n", "320111 in the list is not a code in quotes"),
    ("housing.priority_sectors.toml", GOOD + '2021-01-01 = ["HW", "G J"]\n', "'G J' is not a code of permit sectors"),
    ("housing.per_capita_income_max.toml", GOOD + "2021-01-01 = -1\n", "-1 is not a sum of yuan"),
    ("housing.per_capita_income_max.toml", GOOD + "2021-01-01 = nan\n", "nan is not a sum of yuan"),
])
def test_a_wrong_file_is_refused_naming_it(folder, file, text, says):
    (folder / file).write_text(text, encoding="utf-8")
    found, problems = params.problems(folder)
    assert len(problems) == 1 and file not in {f"{n}.toml" for n in found}
    assert problems[0].startswith(f"parameter file {folder / file}: ") and says in problems[0], problems
    assert "\n" not in problems[0]
    with pytest.raises(params.ParameterError) as err:
        params.read_folder(folder)
    assert str(err.value) == problems[0]


def test_a_misspelt_or_missing_file_is_refused(folder):
    (folder / MONTHS).rename(folder / "settlement.min_employe_months.toml")
    _, problems = params.problems(folder)
    assert problems == [
        f"parameter file {folder / 'settlement.min_employe_months.toml'}: no rule reads a parameter named "
        "'settlement.min_employe_months' (a misspelt file name?)",
        f"parameter file {folder / MONTHS}: missing (rule parameter settlement.min_employee_months)"]
    with pytest.raises(params.ParameterError, match=r"\(and 1 more problems: permitbus params check\)"):
        params.read_folder(folder)
    assert params.problems(folder / "nowhere")[1] == [f"parameter folder {folder / 'nowhere'}: not a folder"]


def test_start_refuses_a_bad_folder_and_a_day_before_the_first_value(folder):
    before = params.active()
    try:
        (folder / MONTHS).write_text(GOOD + "2021-01-01 = nine\n", encoding="utf-8")
        with pytest.raises(SystemExit) as err:
            params.start(folder, D)
        assert str(err.value).startswith(f"permitbus: cannot start: parameter file {folder / MONTHS}: not valid TOML")
        shutil.copy(params.DEFAULT_DIR / MONTHS, folder / MONTHS)
        with pytest.raises(SystemExit) as err:
            params.start(folder, dt.date(2020, 6, 1))
        assert "no value on D = 2020-06-01 (its first value is dated 2021-01-01)" in str(err.value)
        assert params.start(folder, D).directory == folder
    finally:
        params.use(before)


def _cli(*args, **env):
    full = {**os.environ, "PERMITBUS_LOG_LEVEL": "WARNING", **env}
    return subprocess.run([sys.executable, "-m", "services.cli", *args], capture_output=True, text=True, timeout=60,
                          env=full)


async def test_a_decider_with_a_bad_parameter_file_does_not_start_nor_read_a_record(r, redis_url, folder):
    (folder / DISTRICTS).write_text(GOOD + '2021-01-01 = ["320111", "320199"]\n', encoding="utf-8")
    await r.xadd(t.evt(0), {"b": b"an entry a decider would read, and dead-letter"})
    done = _cli("run", "decider", PERMITBUS_REDIS_URL=redis_url, PERMITBUS_PARTITIONS="4",
                PERMITBUS_PARAMS_DIR=str(folder))
    assert done.returncode == 1
    assert done.stderr.strip() == (f"permitbus: cannot start: parameter file {folder / DISTRICTS}: [values] 2021-01-01: "
                                   "'320199' is not one of the Nanjing district codes (320102, 320104, 320105, 320106, "
                                   "320111, 320113, 320114, 320115, 320116, 320117, 320118)")
    assert await r.hget(t.decider_meta(0), "pos") is None  # nothing read, nothing applied
    assert await r.xlen(t.DECIDER_DLQ) == 0 and await r.exists(t.members("decider")) == 0
    early = _cli("run", "decider", PERMITBUS_REDIS_URL=redis_url, PERMITBUS_TODAY="2020-06-01")
    assert early.returncode == 1 and "no value on D = 2020-06-01" in early.stderr
    assert len(early.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [("up",), ("api",), ("run", "scheduler"), ("run", "normalize")])
def test_every_service_refuses_a_bad_parameter_folder(redis_url, folder, command):
    (folder / MONTHS).unlink()
    done = _cli(*command, PERMITBUS_REDIS_URL=redis_url, PERMITBUS_PARAMS_DIR=str(folder))
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"permitbus: cannot start: parameter file {folder / MONTHS}: missing (rule parameter "
        "settlement.min_employee_months)"]


# -- permitbus params check ---------------------------------------------------------------------------
def test_params_check_prints_every_value_with_its_date(folder):
    out, err = io.StringIO(), io.StringIO()
    assert check(params.DEFAULT_DIR, D, out, err) == 0 and err.getvalue() == ""
    text = out.getvalue()
    assert f"{params.DEFAULT_DIR}: {len(params.DECLARED)} parameters, all readable" in text
    assert "housing.per_capita_income_max  (yuan per person per month; read on appliedOn)" in text
    assert "    from 2021-01-01: 3000\n  * from 2022-07-01: 3300\n" in text
    assert "  * from 2021-01-01: 320111 浦口 320116 六合 320117 溧水 320118 高淳" in text
    assert "reference: 宁政办发〔2021〕5号（六）" in text


def test_params_check_command_exit_codes(folder):
    (folder / MONTHS).write_text(GOOD + "2022-01-01 = 6\n2021-01-01 = 9\n", encoding="utf-8")
    (folder / "housing.priority_sectors.toml").write_text(GOOD + "2021-01-01 = []\n", encoding="utf-8")
    bad = _cli("params", "check", str(folder))
    assert bad.returncode == 1 and bad.stdout == ""
    lines = bad.stderr.strip().splitlines()
    assert lines[0].startswith(f"permitbus params check: parameter file {folder / 'housing.priority_sectors.toml'}: ")
    assert lines[1] == (f"permitbus params check: parameter file {folder / MONTHS}: [values] dates are not in "
                        "ascending order (2021-01-01 after 2022-01-01)")
    assert "2 problems; a service would refuse to start with this folder" in lines[2]
    shutil.copy(params.DEFAULT_DIR / MONTHS, folder / MONTHS)
    shutil.copy(params.DEFAULT_DIR / "housing.priority_sectors.toml", folder / "housing.priority_sectors.toml")
    with (folder / MONTHS).open("a", encoding="utf-8") as f:
        f.write("2027-01-01 = 9\n")
    ok = _cli("params", "check", PERMITBUS_PARAMS_DIR=str(folder), PERMITBUS_TODAY="2026-11-28")  # default: in use
    assert ok.returncode == 0, ok.stderr
    assert f"{folder}: " in ok.stdout and "  * from 2021-01-01: 6\n    from 2027-01-01: 9" in ok.stdout
    early = _cli("params", "check", str(folder), PERMITBUS_TODAY="2020-01-01")
    assert early.returncode == 1 and "no value on D = 2020-01-01" in early.stderr


# -- rules versioned by date --------------------------------------------------------------------------
SETTLED_ONLY = Condition("settled_only", "NO_VALID_PERMIT", "a test-only version: settled (落户) only", ("settlement",))


def _settled_only(pic: Picture, day: dt.date, why=SILENT) -> Verdict:
    """A later version of health.family_doctor, for the test only: permit holders no longer count."""
    if why.check(SETTLED_ONLY, pic.settled, pic.person):
        return Verdict(district=pic.settlement_district, basis=health.BASIS)
    return Verdict(district=None, reasons=("NO_VALID_PERMIT",), basis=health.BASIS)


def test_a_roster_rule_uses_the_formula_in_force_on_d():
    from schemas.picture import Permit

    pic = Picture(Person(v=3, id=make_id(), permit=Permit("P1", "320111", dt.date(2025, 1, 1).toordinal(),
                                                          dt.date(2031, 1, 1).toordinal())))
    new = dt.date(2030, 1, 1)
    assert health.decide(pic, new).eligible
    with health.FORMULAS.trying(new, _settled_only, (SETTLED_ONLY,)) as f:
        assert f.name == "formula_2030_01" and health.FORMULAS.at(new) is f
        assert health.decide(pic, new - dt.timedelta(days=1)).eligible  # the base formula before its date
        assert health.decide(pic, new).reasons == ("NO_VALID_PERMIT",)
        e = explain_roster(health.ENTITLEMENT, pic, new)
        assert [c["condition"] for c in e["conditions"]] == ["settled_only"] and e["reasons"] == ["NO_VALID_PERMIT"]
        assert [c["condition"] for c in explain_roster(health.ENTITLEMENT, pic, D)["conditions"]] == [
            "settled", "valid_permit"]
        assert rules.in_force(new) != rules.in_force(new - dt.timedelta(days=1))
        with pytest.raises(ValueError, match="exists already"):
            health.FORMULAS.add(new, _settled_only, ())
    assert health.FORMULAS.dates() == () and health.decide(pic, new).eligible


def test_an_application_rule_uses_the_formula_in_force_on_its_date_of_application(tmp_path):
    def no_priority(app, applicant, day, why=SILENT):
        v = housing.formula(app, applicant, day, why)
        return Verdict(district=v.district, reasons=v.reasons, priority=False, basis=v.basis)

    path = tmp_path / "h.yaml"
    path.write_text("""
- name: priority ends for applications made from 2027-01-01
  as_of: 2026-12-30
  people: {p: 1980-01-01}
  records:
    - psb:permit: {ywlx: LH, sfzh: p, jzdqh: "320111"}
    - housing:application: {applicationNo: OLD, applicantId: p, householdSize: 1, monthlyIncome: 1000, districtCode: "320111", occupation: sanitation}
  expect:
    housing.security: {application: OLD, status: eligible, priority: true}
  then:
    - as_of: 2027-01-02
      records:
        - housing:application: {applicationNo: NEW, applicantId: p, householdSize: 1, monthlyIncome: 1000, districtCode: "320111", occupation: sanitation}
      expect:
        housing.security: {application: NEW, status: eligible, priority: false}
""", encoding="utf-8")
    (situation,) = load(path)
    with housing.FORMULAS.trying(dt.date(2027, 1, 1), no_priority, housing.CONDITIONS):
        assert differences(situation, run(situation)) == []


def test_on_a_formula_date_everyone_is_decided_again(tmp_path):
    path = tmp_path / "f.yaml"
    path.write_text("""
- name: permit holders leave the family-doctor roster on the date of the new formula, with no record
  as_of: 2029-12-30
  people: {p: 1990-01-01, s: 1990-01-01}
  records:
    - psb:permit: {ywlx: QF, sfzh: p, jzzbh: P1, jzdqh: "320111", qfrq: 2029-01-01, yxqz: 2032-12-31}
    - psb:permit: {ywlx: LH, sfzh: s, jzdqh: "320102"}
  expect:
    health.family_doctor: [{subject: p, status: eligible}, {subject: s, status: eligible}]
  then:
    - as_of: 2030-01-01
      expect:
        health.family_doctor: {subject: p, status: revoked, reasons: [NO_VALID_PERMIT], as_of: 2030-01-01}
""", encoding="utf-8")
    (situation,) = load(path)
    with health.FORMULAS.trying(dt.date(2030, 1, 1), _settled_only, (SETTLED_ONLY,)):
        results = run(situation)
    assert differences(situation, results) == []
    assert results[1].ticked == 2  # everyone: the permit holder was due on no date before 2033


def test_a_date_of_application_parameter_or_formula_changes_the_digest_when_edited_not_when_its_date_comes():
    """What an application reads is read as of its date of application, not D: reaching such a
    date changes no decision already made (those applications are dated earlier), so the scheduler
    must not decide everyone again then (a full pass of every picture); an edit of such a value, or
    a new formula, whatever its date, may change an application dated after it: everyone again."""
    ceiling = params.get(housing.INCOME_CEILING)
    later = ceiling.dates[-1]  # 2022-07-01: 3300
    assert rules.in_force(later) == rules.in_force(later - dt.timedelta(days=1))
    before = rules.in_force(D)
    with params.using(params.active().amended({housing.INCOME_CEILING: {"2030-01-01": 4000}})):
        assert rules.in_force(D) != before  # an edit dated after D: applications may be dated then
        assert rules.in_force(dt.date(2030, 1, 1)) == rules.in_force(D)
    with params.using(params.active().amended({settlement.MIN_MONTHS.name: {"2030-01-01": 9}})):
        assert rules.in_force(D) == before  # read on D: in force from its date only
        assert rules.in_force(dt.date(2030, 1, 1)) != rules.in_force(dt.date(2029, 12, 31))
    with housing.FORMULAS.trying(dt.date(2030, 1, 1), housing.formula, housing.CONDITIONS):
        assert rules.in_force(D) != before


# -- a parameter edit, end to end ---------------------------------------------------------------------
async def _tick_to(running, r, settings, clock, day):
    clock.set(day)
    await running.scheduler.check()
    await drain(r, settings)


async def test_a_parameter_edit_takes_effect_on_its_date_through_the_pipeline(r, settings, folder):
    """Six months become nine from 2027-01-01, by an edit of the file between two runs of the services."""
    settings = settings.model_copy(update={"params_dir": str(folder)})
    worker, other, settled = make_id("19900101"), make_id("19910101"), make_id("19800101")
    await publish(r, "psb:permit", permit("QF", worker, district="320111", yxqz="2029-12-31"),
                  permit("QF", other, district="320102", yxqz="2029-12-31"),
                  permit("LH", settled, district="320104"))
    await publish(r, "hrss:contribution", *[contribution(worker, m) for m in months("202501", 7)])
    clock = ManualClock(dt.date(2026, 11, 28))
    async with services(settings, clock=clock) as running:
        await drain(r, settings)
        await running.scheduler.check()
        assert [(d["status"], d["version"]) for d in await read_outlet(r, "outlet:psb")] == [("eligible", 1)]
        assert await r.hget(t.scheduler_state(), "rules") == rules.in_force(clock.today()).encode()
    # the policy office adds a dated line, checks the folder and restarts the services
    with (folder / MONTHS).open("a", encoding="utf-8") as f:
        f.write("2027-01-01 = 9\n")
    assert check(folder, clock.today(), io.StringIO(), io.StringIO()) == 0
    try:
        async with services(settings, clock=clock) as running:
            await _tick_to(running, r, settings, clock, dt.date(2026, 12, 31))  # the new value not in force yet
            assert len(await read_outlet(r, "outlet:psb")) == 1
            ticked = running.scheduler.ticked
            await _tick_to(running, r, settings, clock, dt.date(2027, 1, 1))
            for _ in range(100):
                if len(await read_outlet(r, "outlet:psb")) == 2:
                    break
                await asyncio.sleep(0.05)
            assert running.scheduler.ticked - ticked == 3  # everyone with a picture, not only those due
            psb = await read_outlet(r, "outlet:psb")
            assert [(d["status"], d["reasons"], d["as_of"], d["caused_by"]) for d in psb[1:]] == [
                ("revoked", ["INSUFFICIENT_CONTRIBUTIONS"], "2027-01-01", [])]
            # the picture kept the count of months, not the verdict: two more months count against nine
            await publish(r, "hrss:contribution", *[contribution(worker, m) for m in ("202508", "202509")])
            await drain(r, settings)
            assert [(d["status"], d["version"]) for d in (await read_outlet(r, "outlet:psb"))[2:]] == [
                ("eligible", 3)]
            assert await r.hget(t.scheduler_state(), "rules") == rules.in_force(clock.today()).encode()
            ticked = running.scheduler.ticked
            await _tick_to(running, r, settings, clock, dt.date(2027, 1, 2))  # nothing new in force: the due only
            assert running.scheduler.ticked == ticked
    finally:
        params.use(params.DEFAULT_DIR)


async def test_an_edit_of_a_value_in_force_takes_effect_at_the_first_check(r, settings, folder):
    """The four districts edited in place (a value already in force; docs/policy.md asks for a dated
    line instead, but an edit must not leave decisions that no longer follow the files)."""
    settings = settings.model_copy(update={"params_dir": str(folder)})
    person = make_id("19900101")
    await publish(r, "psb:permit", permit("QF", person, district="320118"))
    await publish(r, "hrss:contribution", *[contribution(person, m) for m in months("202501", 6)])
    clock = ManualClock(D)
    async with services(settings, clock=clock) as running:
        await drain(r, settings)
        await running.scheduler.check()
    assert [d["status"] for d in await read_outlet(r, "outlet:psb")] == ["eligible"]
    text = (folder / DISTRICTS).read_text(encoding="utf-8")
    (folder / DISTRICTS).write_text(text.replace('"320118"]', '"320115"]'), encoding="utf-8")
    try:
        async with services(settings, clock=clock) as running:  # the same day: only the digest differs
            await running.scheduler.check()
            await drain(r, settings)
        psb = await read_outlet(r, "outlet:psb")
        assert [(d["status"], d["reasons"]) for d in psb] == [("eligible", []), ("revoked", ["DISTRICT_NOT_COVERED"])]
    finally:
        params.use(params.DEFAULT_DIR)


async def test_a_first_check_stores_the_rules_in_force_and_ticks_nobody_for_them(r, settings):
    person = make_id()
    await publish(r, "psb:permit", permit("QF", person, district="320111", yxqz="2099-12-31"))
    async with services(settings) as running:
        await drain(r, settings)
        await running.scheduler.check()
        assert running.scheduler.ticked == 0
        assert await r.hget(t.scheduler_state(), "rules") == rules.in_force(D).encode()


async def test_explain_before_the_first_value_says_so(r, settings, capsys):
    from services.ops.explain import main as explain_main

    person = make_id()
    await publish(r, "psb:permit", permit("QF", person, district="320111"))
    async with services(settings):
        await drain(r, settings)
    code = await explain_main(settings, person, "settlement.four_districts", as_of=dt.date(2020, 6, 1))
    assert code == 1
    assert "has no value in force on 2020-06-01 (its first value is dated 2021-01-01)" in capsys.readouterr().err


async def test_the_full_tick_runs_under_the_schedulers_own_user(tmp_path):
    """The scheduler's ACL user (services/runtime/access.py) may read every picture (HSCAN) and
    append the ticks: a changed digest ticks everyone with no NOPERM."""
    import redis.asyncio as aioredis

    from services.runtime.runner import Running, serve
    from services.runtime.settings import Settings
    from services.runtime.setup import run_setup
    from tests.aclredis import acl_redis

    with acl_redis(tmp_path) as srv:
        assert await run_setup(Settings(redis_url=srv.url("pb-setup"))) == 0
        admin = aioredis.Redis.from_url(srv.admin)
        dept = aioredis.Redis.from_url(srv.url("dept-psb"))
        people = [make_id() for _ in range(5)]
        await publish(dept, "psb:permit", *[permit("QF", p, district="320111", yxqz="2099-12-31") for p in people])
        await dept.aclose()
        common = dict(partitions=4, today=D, scheduler_interval_s=0.05, lease_ttl_ms=1000)
        runs = {s: Running() for s in ("normalize", "decider", "relay")}
        tasks = [asyncio.create_task(serve(Settings(redis_url=srv.url(u), **common), [s], running=runs[s],
                                           handle_signals=False))
                 for s, u in (("normalize", "pb-normalize"), ("decider", "pb-decide"), ("relay", "pb-relay"))]
        await asyncio.wait_for(asyncio.gather(*(run.ready.wait() for run in runs.values())), 20)
        await drain(admin, Settings(redis_url=srv.admin, **common))
        await admin.hset(t.scheduler_state(), mapping={"date": D.isoformat(), "rules": "an older digest"})
        sched = Running()
        task = asyncio.create_task(serve(Settings(redis_url=srv.url("pb-schedule"), **common), ["scheduler"],
                                         running=sched, handle_signals=False))
        await asyncio.wait_for(sched.ready.wait(), 20)
        for _ in range(200):
            if await admin.hget(t.scheduler_state(), "rules") == rules.in_force(D).encode():
                break
            await asyncio.sleep(0.05)
        assert sched.scheduler.ticked == 5
        assert int(await admin.hget(t.scheduler_state(), "ticked")) == 5
        for run in (*runs.values(), sched):
            run.stop.set()
        assert await asyncio.gather(*tasks, task) == [0, 0, 0, 0]
        await admin.aclose()
