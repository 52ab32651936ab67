"""A deterministic simulated Nanjing: raw department records exactly as docs/contract.md says they are published.

``generate(cfg)`` builds a population of adults without local registration and yields, interleaved by a
simulated clock, what the four departments publish about them: residence permits (QF, then QZ/BG, then
ZX or LH), monthly contribution files (a burst per month, with late corrections; about one in eight of
those employed stops working at some month of the window), school-place and housing applications.
Each person's records of one feed come in the order the department produced them; about
``malformed_rate`` of every feed are broken on purpose (``Record.malformed`` names the quarantine
reason to expect) and about ``duplicate_rate`` are department retries (``duplicate=True``).
Same config, same records, byte for byte.
"""

from __future__ import annotations

import datetime
import heapq
import itertools
import json
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from schemas.districts import DISTRICTS
from schemas.ids import check_digit

PERMIT, CONTRIB, SCHOOL, HOUSING = "psb:permit", "hrss:contribution", "edu:application", "housing:application"
ID_FIELD = {PERMIT: "ywlsh", CONTRIB: "LSH", SCHOOL: "sqbh", HOUSING: "applicationNo"}
PERSON_FIELDS = {PERMIT: ("sfzh",), CONTRIB: ("AAC002",), SCHOOL: ("xssfzh", "jhrsfzh"), HOUSING: ("applicantId",)}

FOUR = ("320111", "320116", "320117", "320118")  # the four districts of clause (六)
_DISTRICTS = list(DISTRICTS)
_DISTRICT_W = [1.3 if d in FOUR else 1.5 if d == "320115" else 1.0 for d in _DISTRICTS]
HOMETOWNS = ("340102", "340221", "340322", "341021", "341122", "341221", "341321", "342401", "410102", "410323",
             "411023", "411324", "411526", "412822", "320321", "320322", "320382", "320503", "320582", "320585",
             "320723", "320826", "321323", "321084", "360121", "360732", "370214", "370883", "420117", "421126",
             "430524", "431126", "500228", "510122", "511623", "522125", "130229", "230102", "610125", "450126")
NANJING = (*_DISTRICTS, "320100")  # AAB301 codes of Nanjing
SUZHOU = ("320505", "320506", "320508", "320582", "320583", "320585")
JIANGSU = ("320200", "320300", "320400", "320600", "320700", "320900", "321000", "321100")
OUTSIDE = ("310000", "330100", "330200", "340100", "110000")
EMPLOYEE_EXTRAS = ("210", "410", "510")
OTHER_SECTORS = ("JZ", "ZZ", "PF", "CY", "WL", "QT")  # construction, manufacturing, wholesale, catering, ...
OCCUPATIONS = ("construction", "retail", "manufacturing", "logistics", "catering", "software", "domestic_service")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超霞平刚桂华建国红玉兰志春梅海波鹏宇浩婷雪琳晨阳欣怡轩涵诺博远萱琪东"
LOWER_X = 0.06  # share of records spelling a final X as x (about 0.5% of all records)
DAY = 86400


@dataclass(slots=True)
class Record:
    feed: str  # "psb:permit" | "hrss:contribution" | "edu:application" | "housing:application"
    payload: bytes  # the bytes as the department emits them (or malformed bytes)
    malformed: str | None  # None for good records; else the quarantine reason code to expect
    duplicate: bool  # True when this is a department retry of an earlier record (same record id)


@dataclass
class SimConfig:
    people: int = 20000
    seed: int = 7
    months: int = 14  # months of contributions, ending at the month before `today`
    today: datetime.date = datetime.date(2026, 11, 28)
    malformed_rate: float = 0.01
    duplicate_rate: float = 0.005


def make_id(rng: random.Random, birth: datetime.date, region: str = "320111") -> str:
    """A valid 18-character resident ID number (GB 11643-1999) born on ``birth`` in ``region``."""
    body = f"{region}{birth.year:04d}{birth.month:02d}{birth.day:02d}{rng.randrange(1000):03d}"
    return body + check_digit(body)


def generate(cfg: SimConfig) -> Iterator[Record]:
    """Every feed's records, merged by simulated time (permits, applications, monthly contribution files)."""
    city = _City(cfg)
    events = sorted(city.events)
    merged = heapq.merge(events, _contribution_stream(city))
    yield from _with_duplicates((item[3] for item in merged), random.Random(f"{cfg.seed}/dup"), cfg.duplicate_rate)


def contributions_burst(cfg: SimConfig, month: int) -> Iterator[Record]:
    """One month's contribution file (``month`` as YYYYMM): a record per type for every permit holder of the
    population (employee schemes once employed, resident schemes otherwise) and for employed people without
    a permit; malformed records and retries at the configured rates. Within the simulated window it is
    the same file ``generate`` emits for that month, without the late corrections."""
    city = _City(cfg)
    records, late = _contribution_file(city, (month // 100) * 12 + month % 100 - 1)
    records += [rec for _, rec in late]
    return _with_duplicates(records, random.Random(f"{cfg.seed}/dup/{month}"), cfg.duplicate_rate)


# -- spelling helpers -------------------------------------------------------------------------------------

def _dumps(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def _iso(day: int) -> str:
    return datetime.date.fromordinal(day).isoformat()


def _compact(day: int) -> str:
    return _iso(day).replace("-", "")


def _stamp(ts: int) -> str:
    day, s = divmod(ts, DAY)
    return f"{_iso(day)} {s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _plus_years(day: int, n: int) -> int:
    d = datetime.date.fromordinal(day)
    try:
        return d.replace(year=d.year + n).toordinal()
    except ValueError:  # 29 February
        return d.replace(year=d.year + n, day=28).toordinal()


class _Serial:
    """Unique record ids that look random: a counter mapped one-to-one onto ``width`` digits."""

    def __init__(self, template: str, width: int) -> None:
        self.template, self.mod, self.n = template, 10**width, 0

    def __call__(self) -> str:
        self.n += 1
        return self.template.format(self.n * 7_919_993 % self.mod)


@dataclass(slots=True)
class _Contributor:
    who: str  # '"AAC002": ..., "AAC003": ...' JSON fragment
    who_x: str | None  # the same with a lower-case x, for IDs ending in X
    employed_from: int  # absolute month (year*12 + month-1) from which employee schemes are paid
    employed_until: int  # the last month they are paid (then resident schemes, if a permit holder)
    regions: tuple[str, str, int]  # AAB301 before / from the switch month, switch month
    types: tuple[str, ...]  # employee schemes paid
    resident: tuple[str, ...]  # resident schemes paid while not employed (permit holders only)
    home: str  # AAB301 of the resident schemes


@dataclass(slots=True)
class _Permit:
    qf_day: int
    qf_ts: int
    timeline: list[tuple[int, str]]  # (ts, district) from QF and each BG
    settled: tuple[int, str] | None  # (ts, district) of LH

    def district_at(self, ts: int) -> str:
        return [d for t, d in self.timeline if t <= ts][-1] if ts >= self.qf_ts else self.timeline[0][1]


# -- the population ---------------------------------------------------------------------------------------

class _City:
    """The population: per-person psb, edu and housing records (``events``) and who pays contributions."""

    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        # who stops working, and when: a stream of its own, so that the rest of the city is as before
        self.work_rng = random.Random(f"{cfg.seed}/work")
        self.today = cfg.today.toordinal()
        self.year = cfg.today.year
        self.jan1 = datetime.date(self.year, 1, 1).toordinal()
        self.first_month = cfg.today.year * 12 + cfg.today.month - 1 - cfg.months
        self.events: list[tuple[int, int, int, Record]] = []  # (ts, 0, seq, record)
        self.contributors: list[_Contributor] = []
        self.seen: set[str] = set()
        self.new_id = {PERMIT: _Serial("GA{:014d}", 14), SCHOOL: _Serial(f"JY{self.year}" + "{:08d}", 8),
                       HOUSING: _Serial(f"ZF{self.year}-" + "{:07d}", 7)}
        self.permit_nos = itertools.count(1)
        self.bogus_nos = itertools.count(9_000_000)  # permit numbers never issued
        for _ in range(cfg.people):
            self._person()

    def _id(self, birth: datetime.date, region: str) -> str:
        while (pid := make_id(self.rng, birth, region)) in self.seen:
            pass
        self.seen.add(pid)
        return pid

    def _spell(self, pid: str) -> str:
        return pid[:17] + "x" if pid[17] == "X" and self.rng.random() < LOWER_X else pid

    def _name(self, surname: str | None = None) -> str:
        rng = self.rng
        return (surname or rng.choice(SURNAMES)) + "".join(rng.choices(GIVEN, k=rng.choice((1, 2, 2))))

    def _ts(self, day: int, after: int = 0) -> int:
        return max(day * DAY + self.rng.randrange(8 * 3600, 19 * 3600), after + 60)

    def _emit(self, ts: int, feed: str, rec: dict) -> None:
        self.events.append((ts, 0, len(self.events), Record(feed, _dumps(rec), None, False)))
        if self.rng.random() < self.cfg.malformed_rate:
            payload, reason = _corrupt(feed, {**rec, ID_FIELD[feed]: self.new_id[feed]()}, self.rng)
            self.events.append((ts + 1, 0, len(self.events), Record(feed, payload, reason, False)))
        if feed == PERMIT and self.rng.random() < self.cfg.malformed_rate / 5:
            op = self.rng.choice(("QZ", "BG", "ZX"))  # names a permit the person does not hold
            bogus = {"ywlsh": self.new_id[PERMIT](), "ywlx": op, "sfzh": rec["sfzh"], "xm": rec["xm"],
                     "jzzbh": f"{self.rng.choice(_DISTRICTS)}25{next(self.bogus_nos):07d}",
                     "czsj": _stamp(ts + 3600)}
            if op == "BG":
                bogus["jzdqh"] = self.rng.choice(_DISTRICTS)
            elif op == "QZ":
                bogus["qfrq"], bogus["yxqz"] = _iso(ts // DAY), _iso(_plus_years(ts // DAY, 2) - 1)
            bad = Record(feed, _dumps(bogus), "UNKNOWN_PERMIT", False)
            self.events.append((ts + 3600, 0, len(self.events), bad))

    def _person(self) -> None:
        rng, rnd, today = self.rng, self.rng.random, self.today
        pid = self._id(datetime.date.fromordinal(today - rng.randint(7306, 20450)), rng.choice(HOMETOWNS))
        name = self._name()
        permit = self._permits(pid, name) if rnd() < 0.9 else None
        if rnd() < 0.12:
            self._school(pid, name, permit)
        if rnd() < (0.9 if permit and permit.settled else 0.022):
            self._housing(pid, permit)
        employed = rnd() < 0.7
        if not (employed or permit):
            return
        start = self.first_month  # most paid throughout the window, some started later
        if rnd() < 0.2 and self.cfg.months > 1:
            start += rng.randint(1, self.cfg.months - 1)
        r = rnd()
        region = rng.choice(NANJING if r < 0.75 else SUZHOU if r < 0.85 else JIANGSU if r < 0.92 else OUTSIDE)
        regions = (region, region, 0)
        if rnd() < 0.1 and self.cfg.months > 1:  # paid elsewhere first, then in Nanjing
            regions = (rng.choice(SUZHOU + JIANGSU + OUTSIDE), rng.choice(NANJING),
                       self.first_month + rng.randint(1, self.cfg.months - 1))
        types = ("120" if rnd() < 0.05 else "110", "310", *(t for t in EMPLOYEE_EXTRAS if rnd() < 0.5))
        resident = (("390",) if rnd() < 0.6 else ("170", "390")) if permit else ()
        who = json.dumps({"AAC002": pid, "AAC003": name}, ensure_ascii=False)[1:-1]
        until = 1 << 40
        last = self.first_month + self.cfg.months - 1
        if employed and self.work_rng.random() < 0.12:  # stops working (clause （九）'s people)
            until = self.work_rng.randint(start, last)
        self.contributors.append(_Contributor(
            who, who.replace(pid, pid[:17] + "x") if pid[17] == "X" else None,
            start if employed else 1 << 40, until, regions, types, resident,
            permit.timeline[0][1] if permit else rng.choice(NANJING)))

    def _permits(self, pid: str, name: str) -> _Permit:
        """QF, then maybe QZ and BG, then maybe ZX or LH."""
        rng, rnd, today = self.rng, self.rng.random, self.today
        qf_day = today - rng.randint(0, 3 * 365)
        until = _plus_years(qf_day, rng.choices((1, 2, 3), (2, 3, 5))[0]) - 1
        district = rng.choices(_DISTRICTS, _DISTRICT_W)[0]
        r = rnd()
        hylb = rng.choice(("HW", "GJ")) if r < 0.05 else rng.choice(OTHER_SECTORS) if r < 0.35 else None
        no = f"{district}{datetime.date.fromordinal(qf_day).year % 100:02d}{next(self.permit_nos):07d}"
        ops: list[tuple[int, str, dict]] = [(self._ts(qf_day), "QF", {"qfrq": qf_day, "yxqz": until})]
        if rnd() < 0.089 and qf_day < today:
            ops.append((self._ts(rng.randint(qf_day + 1, today)), "BG", {}))
        if until - 30 <= today and rnd() < 0.65:
            qz_day = rng.randint(max(qf_day + 1, until - 30), min(until + 60, today))
            ops.append((self._ts(qz_day), "QZ", {"qfrq": qz_day,
                                                  "yxqz": _plus_years(qz_day, rng.choice((1, 2, 3))) - 1}))
        ops.sort(key=lambda op: op[0])
        permit = _Permit(qf_day, ops[0][0], [], None)
        for ts, op, dates in ops:
            rec = {"ywlsh": self.new_id[PERMIT](), "ywlx": op, "sfzh": self._spell(pid), "xm": name, "jzzbh": no}
            if op == "BG":
                district = rng.choice([d for d in _DISTRICTS if d != district])
            if op != "QZ" or rnd() < 0.5:
                rec["jzdqh"] = district
            if dates:
                spell = _iso if rnd() < 0.5 else _compact
                rec["qfrq"], rec["yxqz"] = spell(dates["qfrq"]), spell(dates["yxqz"])
            if hylb and op != "BG":
                rec["hylb"] = hylb
            rec["czsj"] = _stamp(ts)
            permit.timeline.append((ts, district))
            self._emit(ts, PERMIT, rec)
        last_ts = ops[-1][0]
        r = rnd()
        if r < 0.0444:  # settles (落户) in the current or the previous year
            day = rng.randint(max(last_ts // DAY, datetime.date(self.year - 1, 1, 1).toordinal()), today)
            ts = self._ts(day, last_ts)
            where = district if rnd() < 0.7 else rng.choice(_DISTRICTS)
            permit.settled = (ts, where)
            self._emit(ts, PERMIT, {"ywlsh": self.new_id[PERMIT](), "ywlx": "LH", "sfzh": self._spell(pid),
                                    "xm": name, "jzdqh": where, "czsj": _stamp(ts)})
        elif r < 0.0777:
            ts = self._ts(rng.randint(last_ts // DAY, today), last_ts)
            self._emit(ts, PERMIT, {"ywlsh": self.new_id[PERMIT](), "ywlx": "ZX", "sfzh": self._spell(pid),
                                    "xm": name, "jzzbh": no, "czsj": _stamp(ts)})
        return permit

    def _application_ts(self, permit: _Permit | None) -> int:
        lo = max(self.jan1, permit.qf_day) if permit else self.jan1
        return self._ts(self.rng.randint(lo, self.today), permit.qf_ts if permit else 0)

    def _school(self, guardian: str, name: str, permit: _Permit | None) -> None:
        rng, rnd, year = self.rng, self.rng.random, self.year
        ts = self._application_ts(permit)
        r = rnd()
        born_year = year - 18 if r < 0.02 else year - 5 if r < 0.1 else rng.randint(year - 17, year - 6)
        born = datetime.date(born_year, 1, 1) + datetime.timedelta(days=rng.randrange(365))
        child = self._id(born, guardian[:6] if rnd() < 0.7 else rng.choice(_DISTRICTS))
        age_aug31 = year - born.year - ((born.month, born.day) > (8, 31))
        d = datetime.date.fromordinal(ts // DAY)
        self._emit(ts, SCHOOL, {
            "sqbh": self.new_id[SCHOOL](), "xsxm": self._name(name[0]), "xssfzh": self._spell(child),
            "jhrsfzh": self._spell(guardian), "xd": "XX" if age_aug31 < 12 else "CZ",
            "sqqx": permit.district_at(ts) if permit and rnd() < 0.85 else rng.choice(_DISTRICTS),
            "sqrq": f"{d.year}/{d.month:02d}/{d.day:02d}" if rnd() < 0.5 else f"{d.year}年{d.month}月{d.day}日"})

    def _housing(self, applicant: str, permit: _Permit | None) -> None:
        rng, rnd = self.rng, self.rng.random
        ts = self._application_ts(permit)
        income: float | int | str = rng.randint(2000, 12000)
        r = rnd()
        if r < 0.2:
            income = income + rng.randrange(100) / 100
        elif r < 0.45:
            income = f"{income:.2f}" if rnd() < 0.5 else str(income)
        if permit and permit.settled and rnd() < 0.8:
            district = permit.settled[1]
        else:
            district = permit.district_at(ts) if permit and rnd() < 0.8 else rng.choice(_DISTRICTS)
        rec = {"applicationNo": self.new_id[HOUSING](), "applicantId": self._spell(applicant),
               "householdSize": rng.choices((1, 2, 3, 4, 5), (2, 3, 3, 2, 1))[0], "monthlyIncome": income,
               "ownsHome": rnd() < 0.12, "districtCode": district}
        r = rnd()
        if r < 0.1:
            rec["occupation"] = rng.choice(("sanitation", "public_transport"))
        elif r < 0.55:
            rec["occupation"] = rng.choice(OCCUPATIONS)
        rec["appliedOn"] = _iso(ts // DAY)
        self._emit(ts, HOUSING, rec)


# -- contributions ----------------------------------------------------------------------------------------

def _contribution_file(city: _City, month: int) -> tuple[list[Record], list[tuple[int, Record]]]:
    """The records of one contribution month (absolute month number), plus late corrections
    (months later, new LSH, unpaid -> paid) as (delay in months, record)."""
    cfg = city.cfg
    rng = random.Random(f"{cfg.seed}/hrss/{month}")
    rnd, rate = rng.random, cfg.malformed_rate
    yyyymm = f"{month // 12}{month % 12 + 1:02d}"
    lsh = _Serial(yyyymm + "{:012d}", 12)
    out: list[Record] = []
    late: list[tuple[int, Record]] = []
    for c in city.contributors:
        if c.employed_from <= month <= c.employed_until:
            before, after, switch = c.regions
            region, types = (after if month >= switch else before), c.types
        elif c.resident:
            region, types = c.home, c.resident
        else:
            continue
        for typ in types:
            who = c.who_x if c.who_x is not None and rnd() < LOWER_X else c.who
            flag = "0" if rnd() < 0.03 else "1"
            tail = f'"AAE140": "{typ}", "AAE002": "{yyyymm}", "AAB301": "{region}", "AAE078": '
            payload = f'{{"LSH": "{lsh()}", {who}, {tail}"{flag}"}}'.encode()  # == json.dumps of the dict
            out.append(Record(CONTRIB, payload, None, False))
            if flag == "0" and rnd() < 0.4:
                fixed = f'{{"LSH": "{lsh()}", {who}, {tail}"1"}}'.encode()
                late.append((rng.randint(1, 3), Record(CONTRIB, fixed, None, False)))
            if rnd() < rate:
                bad, reason = _corrupt(CONTRIB, {**json.loads(payload), "LSH": lsh()}, rng)
                out.append(Record(CONTRIB, bad, reason, False))
    return out, late


def _contribution_stream(city: _City) -> Iterator[tuple[int, int, int, Record]]:
    """Month after month, that month's file delivered early in the following month over five hours."""
    first, last = city.first_month, city.first_month + city.cfg.months - 1
    pending: dict[int, list[Record]] = defaultdict(list)
    for month in range(first, last + 1):
        records, late = _contribution_file(city, month)
        for delay, rec in late:
            pending[min(month + delay, last)].append(rec)
        records += pending.pop(month, [])
        y, m = divmod(month + 1, 12)
        start = min(datetime.date(y, m + 1, 8).toordinal(), city.today) * DAY + 3600
        n = len(records)
        for i, rec in enumerate(records):
            yield (start + i * 18000 // n, 1, i, rec)


def _with_duplicates(records: Iterable[Record], rng: random.Random, rate: float,
                     keep: int = 20000) -> Iterator[Record]:
    """Pass records through; now and then re-send one of the recent good ones (a department retry)."""
    recent: list[Record] = []
    pos, rnd = 0, rng.random
    for rec in records:
        yield rec
        if rec.malformed is None:
            if len(recent) < keep:
                recent.append(rec)
            else:
                recent[pos] = rec
                pos = (pos + 1) % keep
            if rnd() < rate:
                old = recent[int(rnd() * len(recent))]
                yield Record(old.feed, old.payload, None, True)


# -- malformed records ------------------------------------------------------------------------------------

_COMMON = ("TEXT", "UTF8", "ARRAY", "MISSING_FIELD", "WRONG_TYPE", "BAD_ID_CHECKSUM")
_KINDS = {PERMIT: (*_COMMON, "UNKNOWN_CODE", "BAD_DATE", "UNKNOWN_DISTRICT", "DATE_ORDER"),
          CONTRIB: (*_COMMON, "UNKNOWN_CODE", "BAD_DATE", "BAD_REGION"),
          SCHOOL: (*_COMMON, "UNKNOWN_CODE", "BAD_DATE", "UNKNOWN_DISTRICT", "SAME_PERSON"),
          HOUSING: (*_COMMON, "BAD_NUMBER", "BAD_DATE", "UNKNOWN_DISTRICT")}
_DISTRICT_FIELD = {PERMIT: "jzdqh", SCHOOL: "sqqx", HOUSING: "districtCode"}


def _required(feed: str, rec: dict) -> list[str]:
    if feed != PERMIT:
        return [k for k in rec if k != "occupation"]
    op = rec["ywlx"]
    return ["ywlsh", "ywlx", "sfzh", "xm", "czsj", *(["jzzbh"] if op != "LH" else []),
            *(["jzdqh"] if op in ("QF", "BG", "LH") else []), *(["qfrq", "yxqz"] if op in ("QF", "QZ") else [])]


def _corrupt(feed: str, rec: dict, rng: random.Random) -> tuple[bytes, str]:
    """Break a (copied) good record one way; returns the bytes and the reason the ingress must give."""
    kind, op = rng.choice(_KINDS[feed]), rec.get("ywlx")
    if kind == "DATE_ORDER" and op not in ("QF", "QZ"):
        kind = "BAD_DATE"
    if kind == "UNKNOWN_DISTRICT" and op == "ZX":
        kind = "UNKNOWN_CODE"
    y = rng.choice(("2025", "2026"))
    if kind == "TEXT":
        text = json.dumps(rec, ensure_ascii=False)
        garbage = rng.choice((text[: len(text) // 2], repr(rec), "<html><body>502 Bad Gateway</body></html>"))
        return garbage.encode(), "INVALID_JSON"
    if kind == "UTF8":  # exported in GBK instead of UTF-8
        return json.dumps({**rec, "备注": "无"}, ensure_ascii=False).encode("gbk"), "INVALID_JSON"
    if kind == "ARRAY":
        return _dumps([rec]), "NOT_AN_OBJECT"
    if kind == "MISSING_FIELD":
        name = rng.choice(_required(feed, rec))
        if rng.random() < 0.5:
            del rec[name]
        else:
            rec[name] = None
    elif kind == "WRONG_TYPE":
        if feed == HOUSING and rng.random() < 0.5:
            rec.update(rng.choice(({"ownsHome": "false"}, {"householdSize": str(rec["householdSize"])})))
        else:
            name = rng.choice(PERSON_FIELDS[feed])
            rec[name] = int(rec[name][:17])
    elif kind == "BAD_ID_CHECKSUM":
        name = rng.choice(PERSON_FIELDS[feed])
        good = rec[name].upper()
        rec[name] = good[:17] + rng.choice([c for c in "0123456789X" if c != good[17]])
    elif kind == "UNKNOWN_CODE":
        if feed == PERMIT:
            rec["ywlx"] = rng.choice(("QY", "XF", "qf", "ZF"))
        elif feed == SCHOOL:
            rec["xd"] = rng.choice(("GZ", "YE", "xx"))
        else:
            rec.update(rng.choice(({"AAE140": "999"}, {"AAE140": "180"}, {"AAE078": "2"}, {"AAE078": "Y"})))
    elif kind == "BAD_DATE":
        if feed == PERMIT and op in ("QF", "QZ") and rng.random() < 0.5:
            rec["qfrq"] = rng.choice((f"{y}-02-30", f"{y}0230", f"{y}.03.01"))
        elif feed == PERMIT:
            rec["czsj"] = rng.choice((f"{y}-02-30 10:15:00", f"{y}-06-31 09:00:00", f"{y}/06/01 09:00:00"))
        elif feed == CONTRIB:
            rec["AAE002"] = rng.choice(("202513", "2025-10", "202500"))
        elif feed == SCHOOL:
            rec["sqrq"] = rng.choice((f"{y}/02/30", f"{y}-03-15", f"{y}年2月30日"))
        else:
            rec["appliedOn"] = rng.choice((f"{y}-02-30", f"{y}/03/15", f"{y}0315"))
    elif kind == "UNKNOWN_DISTRICT":
        rec[_DISTRICT_FIELD[feed]] = rng.choice(("320199", "320100", "320112", "320103"))
    elif kind == "DATE_ORDER":
        spelled, digits = rec["qfrq"], rec["qfrq"].replace("-", "")
        start = datetime.date(int(digits[:4]), int(digits[4:6]), int(digits[6:])).toordinal()
        rec["yxqz"] = (_iso if "-" in spelled else _compact)(start - rng.randint(1, 400))
    elif kind == "BAD_REGION":
        rec["AAB301"] = rng.choice(("32AB", "3201", "320 10"))
    elif kind == "BAD_NUMBER":
        rec.update(rng.choice(({"householdSize": 0}, {"householdSize": -1}, {"monthlyIncome": -500},
                               {"monthlyIncome": "约5000"})))
    elif kind == "SAME_PERSON":
        rec["xssfzh"] = rec["jhrsfzh"]
    return _dumps(rec), kind
