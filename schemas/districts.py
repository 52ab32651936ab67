"""Nanjing's 11 districts, in a fixed order that stored data depends on. APPEND-ONLY.

A district's position (``index``, 1-based) is stored: the roster index of every outlet
(``rosteridx{...}``, services/runtime/topology.py) maps each listed entry to the index of its
district's roster, which pb_relay and pb_subject turn into a key (services/runtime/permitbus.lua,
KEYS roster_1..11). Reordering or removing an entry would make stored indexes point at another
district's roster; tests/test_vocabulary.py pins each code's index. A new district goes at the end
(and the Lua key count grows with it). Imports nothing from ``services``.
"""

from __future__ import annotations

DISTRICTS: dict[str, str] = {
    "320102": "玄武",
    "320104": "秦淮",
    "320105": "建邺",
    "320106": "鼓楼",
    "320111": "浦口",
    "320113": "栖霞",
    "320114": "雨花台",
    "320115": "江宁",
    "320116": "六合",
    "320117": "溧水",
    "320118": "高淳",
}

# code -> its stored index, 1..11 (0 is stored for "no district")
INDEX: dict[str, int] = {code: i + 1 for i, code in enumerate(DISTRICTS)}
