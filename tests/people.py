"""Readable builders of department records for tests (docs/contract.md field names)."""

from __future__ import annotations

import datetime as dt
import itertools

from schemas.ids import check_digit

_seq = itertools.count(1)


def make_id(birth: str = "19900101", region: str = "340102", seq: int | None = None) -> str:
    body = f"{region}{birth}{(seq if seq is not None else next(_seq)) % 1000:03d}"
    return body + check_digit(body)


def rid(prefix: str) -> str:
    return f"{prefix}{next(_seq):010d}"


def permit(op: str, sfzh: str, *, jzzbh: str = "JZZ001", district: str | None = "320111",
           qfrq: str | None = "2025-01-01", yxqz: str | None = "2027-12-31", hylb: str | None = None,
           czsj: str = "2025-01-01 09:00:00", ywlsh: str | None = None, **extra) -> dict:
    rec = {"ywlsh": ywlsh or rid("GA"), "ywlx": op, "sfzh": sfzh, "xm": "张三", "czsj": czsj}
    if op != "LH":
        rec["jzzbh"] = jzzbh
    if district is not None:
        rec["jzdqh"] = district
    if op in ("QF", "QZ"):
        rec["qfrq"], rec["yxqz"] = qfrq, yxqz
    if hylb is not None:
        rec["hylb"] = hylb
    rec.update(extra)
    return rec


def contribution(sfzh: str, month: str, *, aae140: str = "110", region: str = "320102", paid: str = "1",
                 lsh: str | None = None) -> dict:
    return {"LSH": lsh or rid("RS"), "AAC002": sfzh, "AAC003": "张三", "AAE140": aae140, "AAE002": month,
            "AAB301": region, "AAE078": paid}


def months(first: str, n: int) -> list[str]:
    y, m = int(first[:4]), int(first[4:])
    out = []
    for _ in range(n):
        out.append(f"{y}{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def school(guardian: str, child: str, *, xd: str = "XX", sqqx: str = "320111", sqrq: str = "2026/03/01",
           sqbh: str | None = None) -> dict:
    return {"sqbh": sqbh or rid("JY"), "xsxm": "小明", "xssfzh": child, "jhrsfzh": guardian, "xd": xd,
            "sqqx": sqqx, "sqrq": sqrq}


def housing(applicant: str, *, size=3, income=6000, owns=False, district="320111", occupation=None,
            applied="2026-03-01", no: str | None = None) -> dict:
    rec = {"applicationNo": no or rid("ZF"), "applicantId": applicant, "householdSize": size,
           "monthlyIncome": income, "ownsHome": owns, "districtCode": district, "appliedOn": applied}
    if occupation is not None:
        rec["occupation"] = occupation
    return rec


def day(s: str) -> dt.date:
    return dt.date.fromisoformat(s)
