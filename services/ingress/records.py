"""The departments' records as JSON Schema: what ``permitbus asyncapi`` publishes for each feed.

Each schema says, field by field, what docs/contract.md ("Ingress") asks of the JSON object in an
ingress entry's ``payload``: required fields, spellings (patterns), codes (enums, taken from the
normalizers' own lists), ranges and the input limits. It is documentation for a department's
developer, built from the same constants the normalizers check against, so the two cannot drift
apart on a code list. Invariant (tests/test_asyncapi.py): every record the normalizer accepts
validates against its feed's schema; what the schema cannot say (a check digit, a birth date after
the record's own date, ``yxqz`` before ``qfrq``) is in the field's description and is quarantined.
"""

from __future__ import annotations

from typing import Any

from schemas import codes
from schemas.dates import HOUSING_FIRST_DAY, SCHOOL_FIRST_DAY
from schemas.districts import DISTRICTS
from services.ingress import housing
from services.ingress.fields import MAX_NUMBER  # the normalizer's own limits, stated
from services.ingress.limits import MAX_DEPTH as MAX_JSON_DEPTH
from services.ingress.limits import MAX_PAYLOAD_BYTES  # PERMITBUS_MAX_PAYLOAD_BYTES may change it

# docs/contract.md "What bad input gets": limits that make a record bad input (quarantined, never a crash).

_YEAR = "(19[0-9]{2}|20[0-9]{2})"  # 1900-2099: a date outside is BAD_DATE
_MM, _DD = "(0[1-9]|1[0-2])", "(0[1-9]|[12][0-9]|3[01])"
DATE_PATTERNS: dict[str, str] = {
    "YYYY-MM-DD": f"{_YEAR}-{_MM}-{_DD}",
    "YYYYMMDD": f"{_YEAR}{_MM}{_DD}",
    "YYYY/MM/DD": f"{_YEAR}/{_MM}/{_DD}",
    "YYYY年M月D日": f"{_YEAR}年(0?[1-9]|1[0-2])月(0?[1-9]|[12][0-9]|3[01])日",
}


def text(description: str) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "description": description + " Required, not empty."}


def optional_text(description: str) -> dict[str, Any]:
    return {"type": ["string", "null"], "description": description + " Optional."}


def id_number(description: str) -> dict[str, Any]:
    return {"type": "string", "pattern": "^[0-9]{17}[0-9Xx]$", "minLength": 18, "maxLength": 18,
            "description": f"{description}: an 18-character resident identity number (GB 11643-1999), 17 digits "
                           "and a check character (`0`-`9` or `X`, lower-case `x` accepted). Positions 7-14 are the "
                           "date of birth `YYYYMMDD`, not before 1900-01-01 nor after the record's own date "
                           "(`BAD_ID`); a wrong check digit is `BAD_ID_CHECKSUM`."}


def district(description: str) -> dict[str, Any]:
    names = " · ".join(f"{code} {name}" for code, name in DISTRICTS.items())
    return {"type": "string", "enum": list(DISTRICTS),
            "description": f"{description}: one of Nanjing's 11 district codes ({names}); any other is "
                           "`UNKNOWN_DISTRICT`."}


def date(description: str, *spellings: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "string", "pattern": "^(" + "|".join(DATE_PATTERNS[s] for s in spellings) + ")$",
        "description": f"{description}, spelled {' or '.join(f'`{s}`' for s in spellings)}; a possible date between "
                       "1900-01-01 and 2099-12-31 (else `BAD_DATE`).",
    }
    if spellings == ("YYYY-MM-DD",):
        out["format"] = "date"
    return out


def code(description: str, codes: list[str]) -> dict[str, Any]:
    return {"type": "string", "enum": codes, "description": description + " Any other code is `UNKNOWN_CODE`."}


def _record(title: str, description: str, properties: dict[str, Any], required: list[str],
            **more: Any) -> dict[str, Any]:
    return {"title": title, "description": description + " Unknown extra fields are ignored.", "type": "object",
            "properties": properties, "required": required, "additionalProperties": True, **more}


def _when(op_codes: list[str], required: list[str], properties: dict[str, Any] | None = None) -> dict[str, Any]:
    then: dict[str, Any] = {"required": required}
    if properties:
        then["properties"] = properties
    return {"if": {"properties": {"ywlx": {"enum": op_codes}}, "required": ["ywlx"]}, "then": then}


def permit_record() -> dict[str, Any]:
    ops = codes.OPERATIONS
    yes = ["QF", "QZ", "BG", "ZX"]
    return _record("PermitRecord", "Public Security Bureau (市公安局): residence permits and settlement.", {
        "ywlsh": text("业务流水号, the record id, unique per record."),
        "ywlx": code("业务类型, the operation: " + " · ".join(f"`{k}` {v}" for k, v in ops.items()) + ".", list(ops)),
        "sfzh": id_number("公民身份号码, the person"),
        "xm": text("姓名, the person's name."),
        # Fields that only some operations read are constrained only for those (the ``allOf`` below):
        # the normalizer ignores them elsewhere, so the schema must not refuse what it accepts.
        "jzzbh": {"description": "居住证编号, the permit number: a string, required for `QF` `QZ` `BG` `ZX`; "
                                 "ignored for `LH`."},
        "jzdqh": {"description": "District code of residence (for `LH`: the district of registration): one of "
                                 "the 11 district codes, required for `QF` `BG` `LH`, optional for `QZ`; ignored "
                                 "for `ZX`."},
        "qfrq": {"description": "签发日期, issue or renewal date, `YYYY-MM-DD` or `YYYYMMDD`: required for `QF` "
                                "`QZ`, ignored otherwise."},
        "yxqz": {"description": "有效期至, valid until (inclusive), `YYYY-MM-DD` or `YYYYMMDD`: required for `QF` "
                                "`QZ`, not before `qfrq` (else `DATE_ORDER`); ignored otherwise."},
        "hylb": {"description": "行业类别, sector, read for `QF` `QZ`: " + ", ".join(
            f"`{k}` {v}" for k, v in codes.SECTORS.items()) + ", anything else = other."},
        "czsj": {"type": "string",
                 "pattern": f"^{_YEAR}-{_MM}-{_DD} ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]$",
                 "description": "操作时间, the time of the operation, `YYYY-MM-DD HH:MM:SS`, Beijing time. Required."},
    }, ["ywlsh", "ywlx", "sfzh", "xm", "czsj"], allOf=[
        _when(yes, ["jzzbh"], {"jzzbh": {"type": "string", "minLength": 1}}),
        _when(["QF", "BG", "LH"], ["jzdqh"], {"jzdqh": district("The district")}),
        _when(["QZ"], [], {"jzdqh": {"type": ["string", "null"], "enum": [*DISTRICTS, "", None]}}),
        _when(["QF", "QZ"], ["qfrq", "yxqz"], {
            "qfrq": date("签发日期, issue or renewal date", "YYYY-MM-DD", "YYYYMMDD"),
            "yxqz": date("有效期至, valid until (inclusive)", "YYYY-MM-DD", "YYYYMMDD"),
            "hylb": optional_text("行业类别, sector.")}),
    ])


def contribution_record() -> dict[str, Any]:
    types = codes.INSURANCE_TYPE_NAMES
    return _record("ContributionRecord", "Human Resources and Social Security Bureau (市人社局): one social-insurance "
                   "record per person, month, insurance type and paying city. A later record for the same person, "
                   "type, month and region replaces the earlier one.", {
        "LSH": text("The record id, unique per record."),
        "AAC002": id_number("The person"),
        "AAC003": text("The person's name."),
        "AAE140": code("Insurance type: " + " · ".join(f"`{k}` {v}" for k, v in types.items()) + ".", list(types)),
        "AAE002": {"type": "string", "pattern": f"^(199[0-9]|20[0-9]{{2}}){_MM}$",
                   "description": "Contribution month `YYYYMM`, 199001-209912 (else `BAD_DATE`). Required."},
        "AAB301": {"type": "string", "pattern": "^[0-9]{6}$",
                   "description": "Region code of the paying city, 6 digits: `3201xx` Nanjing, `3205xx` Suzhou, "
                                  "other `32xxxx` other Jiangsu cities, anything else outside Jiangsu (else "
                                  "`BAD_REGION`). Required."},
        "AAE078": code("Arrival flag: `\"1\"` paid, `\"0\"` due but unpaid.", sorted(codes.ARRIVAL, reverse=True)),
    }, ["LSH", "AAC002", "AAC003", "AAE140", "AAE002", "AAB301", "AAE078"])


def school_record() -> dict[str, Any]:
    stages = codes.STAGES
    return _record("SchoolApplication", "Education Bureau (市教育局): an application for a school place for a child "
                   "who moved with their parents (随迁子女).", {
        "sqbh": text("申请编号, the application id, unique."),
        "xsxm": text("The child's name."),
        "xssfzh": id_number("The child"),
        "jhrsfzh": id_number("The guardian, not the child (else `SAME_PERSON`)"),
        "xd": code("学段, the stage: " + " · ".join(f"`{k}` {v}" for k, v in stages.items()) + ".", list(stages)),
        "sqqx": district("The district where the place is requested"),
        "sqrq": date(f"申请日期, the application date, not before {SCHOOL_FIRST_DAY.isoformat()} "
                     "(when the figures of the education rule start)", "YYYY/MM/DD", "YYYY年M月D日"),
    }, ["sqbh", "xsxm", "xssfzh", "jhrsfzh", "xd", "sqqx", "sqrq"])


def housing_record() -> dict[str, Any]:
    first = HOUSING_FIRST_DAY.isoformat()
    return _record("HousingApplication", "Housing Security and Property Bureau (市住房保障和房产局): an application "
                   "for housing security.", {
        "applicationNo": text("The application id, unique."),
        "applicantId": id_number("The applicant"),
        "householdSize": {"type": "integer", "minimum": 1, "maximum": housing.MAX_HOUSEHOLD,
                          "description": f"People in the household, an integer from 1 to {housing.MAX_HOUSEHOLD} "
                                         "(else `BAD_NUMBER`). Required."},
        "monthlyIncome": {"anyOf": [{"type": "number", "minimum": 0, "maximum": MAX_NUMBER},
                                    {"type": "string", "pattern": r"^\s*[0-9]+(\.[0-9]+)?\s*$"}],
                          "description": "Household monthly income in yuan: a number or a numeric string, finite, "
                                         f"≥ 0 and at most {MAX_NUMBER:.0e} (else `BAD_NUMBER`). Required."},
        "ownsHome": {"type": "boolean", "description": "The household owns housing. Required."},
        "districtCode": district("The district applied in"),
        "occupation": optional_text("Sector: " + ", ".join(f"`{k}`" for k in codes.OCCUPATIONS)
                                    + ", anything else = other."),
        "appliedOn": date(f"The application date, not before {first} (when the income ceiling starts)",
                          "YYYY-MM-DD"),
    }, ["applicationNo", "applicantId", "householdSize", "monthlyIncome", "ownsHome", "districtCode", "appliedOn"])


RECORDS = {"psb:permit": permit_record, "hrss:contribution": contribution_record,
           "edu:application": school_record, "housing:application": housing_record}


def record_schema(feed: str) -> dict[str, Any]:
    """The JSON Schema of one feed's records (the object in an ingress entry's ``payload``)."""
    return RECORDS[feed]()


def limits() -> dict[str, Any]:
    """The input limits of docs/contract.md, as the document states them."""
    return {"maxPayloadBytes": MAX_PAYLOAD_BYTES, "maxJsonDepth": MAX_JSON_DEPTH, "maxNumber": MAX_NUMBER,
            "duplicateFields": "DUPLICATE_FIELD"}
