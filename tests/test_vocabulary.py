"""The shared vocabulary (schemas/ids.py, codes.py, districts.py, dates.py) and the arrows to it.

House style ("Absorb", point 2, /work/shared/notes/house-style.md): ID logic, code lists and the
district list live in ``schemas/``; ingress, pictures and rules import them from there, and no
arrow points back up. Two orders are stored in data and pinned here entry by entry.
"""

from __future__ import annotations

import ast
import datetime as dt
import pathlib

import pytest

from schemas import codes, dates, districts, ids
from services.picture import contributions
from services.rules import education, housing, params
from services.rules.housing import INCOME_CEILING, PRIORITY_OCCUPATIONS, PRIORITY_SECTORS
from services.rules.settlement import DISTRICTS as FOUR_DISTRICTS

ROOT = pathlib.Path(__file__).resolve().parent.parent

# -- stored orders: append-only ---------------------------------------------------------------
# The roster index of every outlet stores each listed entry's district as this index
# (services/outlets/relay.py DISTRICT_INDEX -> pb_relay, KEYS roster_1..11 in permitbus.lua).
STORED_DISTRICT_INDEX = [
    ("320102", 1), ("320104", 2), ("320105", 3), ("320106", 4), ("320111", 5), ("320113", 6),
    ("320114", 7), ("320115", 8), ("320116", 9), ("320117", 10), ("320118", 11),
]
# Every picture's packed contribution slots store the AAE140 type as this index (3 bits,
# services/picture/contributions.py).
STORED_TYPE_INDEX = [("110", 0), ("120", 1), ("210", 2), ("310", 3), ("410", 4), ("510", 5), ("170", 6), ("390", 7)]


@pytest.mark.parametrize(("code", "index"), STORED_DISTRICT_INDEX)
def test_a_district_keeps_the_index_stored_rosters_depend_on(code, index):
    assert districts.INDEX[code] == index, f"district {code} moved: stored roster indexes would point elsewhere"
    assert list(districts.DISTRICTS)[index - 1] == code


def test_the_district_list_only_grows_at_its_end():
    pinned = [code for code, _ in STORED_DISTRICT_INDEX]
    assert list(districts.DISTRICTS)[:len(pinned)] == pinned
    assert sorted(districts.INDEX.values()) == list(range(1, len(districts.DISTRICTS) + 1))


def test_the_relay_stores_the_vocabulary_s_index():
    from services.outlets.relay import DISTRICT_INDEX
    assert DISTRICT_INDEX == {code: str(i) for code, i in STORED_DISTRICT_INDEX}


@pytest.mark.parametrize(("code", "index"), STORED_TYPE_INDEX)
def test_an_insurance_type_keeps_the_index_stored_pictures_depend_on(code, index):
    assert codes.INSURANCE_TYPES_IN_ORDER[index] == code, f"AAE140 {code} moved: stored pictures would misread it"
    assert contributions.TYPES[index] == code


def test_a_packed_slot_stores_the_pinned_type_index():
    c = contributions.Contributions()
    for m, (code, _) in enumerate(STORED_TYPE_INDEX):
        c.record(m + 1, 202401 + m, code, "320102", True)
    assert [c._slot(i)[0] for i in range(len(STORED_TYPE_INDEX))] == [i for _, i in STORED_TYPE_INDEX]
    assert [t for _, t, _, _ in c.records()] == [code for code, _ in STORED_TYPE_INDEX]


# -- code lists: one meaning each -------------------------------------------------------------
def test_every_insurance_type_is_employee_or_resident_and_named():
    assert codes.EMPLOYEE_TYPES.isdisjoint(codes.RESIDENT_TYPES)
    assert codes.INSURANCE_TYPES == set(codes.INSURANCE_TYPES_IN_ORDER) == set(codes.INSURANCE_TYPE_NAMES)
    assert codes.EMPLOYEE_MEDICAL in codes.EMPLOYEE_TYPES
    assert "medical" in codes.INSURANCE_TYPE_NAMES[codes.EMPLOYEE_MEDICAL]


def test_the_rules_name_only_codes_of_the_vocabulary():
    """Every dated value of the shipped parameter files (services/rules/params/): a city's own
    folder may name a sector or an occupation this release does not (params.Codes)."""
    for handle, known in ((PRIORITY_SECTORS, codes.SECTORS), (PRIORITY_OCCUPATIONS, codes.OCCUPATIONS),
                          (FOUR_DISTRICTS, districts.DISTRICTS)):
        shipped = params.load(handle.name, params.DEFAULT_DIR)
        assert all(value <= set(known) for value in shipped.values), handle.name


def test_ingress_s_first_housing_day_is_when_the_housing_figures_start():
    """Ingress rejects an ``appliedOn`` before ``HOUSING_FIRST_DAY`` without reading the rules; the
    rules must have every figure in force from that day (else accepted applications cannot be
    decided), and the schema says it is the day the ceiling starts."""
    assert housing.applications_from() == dates.HOUSING_FIRST_DAY, \
        "the housing parameters' first date moved: move schemas/dates.py HOUSING_FIRST_DAY with it"
    assert params.get(INCOME_CEILING).dates[0] == dates.HOUSING_FIRST_DAY


def test_ingress_s_first_school_day_is_when_the_education_figures_start():
    """The same for ``sqrq`` and the ages of the education rule (services/ingress/school.py)."""
    assert education.applications_from() == dates.SCHOOL_FIRST_DAY, \
        "the education parameters' first date moved: move schemas/dates.py SCHOOL_FIRST_DAY with it"


# -- ID numbers ----------------------------------------------------------------------------------
def test_id_numbers():
    body = "32010219900307123"
    good = body + ids.check_digit(body)
    assert ids.id_problem(good) is None and ids.birth_date(good) == dt.date(1990, 3, 7)
    wrong = body + ("0" if good[-1] != "0" else "1")
    assert ids.id_problem(wrong) == "BAD_ID_CHECKSUM"
    old = "32010218991231123"
    assert ids.id_problem(old + ids.check_digit(old)) == "BAD_ID"  # before schemas/dates.py FIRST_DATE
    assert ids.id_problem("3201021990030712") == "BAD_ID"
    assert set(ids.PROBLEMS) == {"BAD_ID", "BAD_ID_CHECKSUM"}
    assert ids.mask(good) == "320102********" + good[-4:] and ids.mask(None) == "<none>" and ids.mask("abc") == "***"


# -- arrows pointing down ----------------------------------------------------------------------
def imports_of(folder: str, root: pathlib.Path = ROOT) -> dict[str, set[str]]:
    """Every module each file of ``folder`` imports, anywhere in it (function-level imports too)."""
    out = {}
    for path in sorted((root / folder).rglob("*.py")):
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path}: relative import"  # would hide the target from this test
                found.add(node.module or "")
                found.update(f"{node.module}.{a.name}" for a in node.names)
        out[str(path.relative_to(root))] = found
    return out


def wrong_way(folder: str, forbidden: str, root: pathlib.Path = ROOT) -> list[str]:
    return [f"{path} imports {m}" for path, mods in imports_of(folder, root).items() for m in sorted(mods)
            if m == forbidden or m.startswith(forbidden + ".")]


@pytest.mark.parametrize(("folder", "forbidden"), [
    ("schemas", "services"),              # the vocabulary depends on no service
    ("services/rules", "services.ingress"),
    ("services/picture", "services.ingress"),
    ("services/picture", "services.rules"),
    ("services/ingress", "services.rules"),  # ingress reads no rule parameter (schemas/dates.py)
])
def test_no_arrow_points_the_wrong_way(folder, forbidden):
    assert imports_of(folder), folder
    assert wrong_way(folder, forbidden) == []


def test_the_arrow_test_sees_an_arrow(tmp_path):
    """The checker itself: a file importing a forbidden module is named."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("def f():\n    from services.ingress import fields\n")
    (tmp_path / "pkg" / "b.py").write_text("import services.rules.params\n")
    assert wrong_way("pkg", "services.ingress", tmp_path) == ["pkg/a.py imports services.ingress",
                                                             "pkg/a.py imports services.ingress.fields"]
    assert wrong_way("pkg", "services.rules", tmp_path) == ["pkg/b.py imports services.rules.params"]
    assert wrong_way("pkg", "services.rule", tmp_path) == []  # a prefix of a name is not the module
