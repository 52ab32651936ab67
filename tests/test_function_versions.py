"""Workers of two versions (a rolling upgrade) share one Redis: each calls the functions of its
own version, named after the Lua source, so none gets arguments it does not understand."""

from __future__ import annotations

import pytest

from services.runtime.redis import LIBRARY, LUA, VERSION, fn, load_functions

OLDER = """#!lua name=permitbus
redis.register_function('pb_commit', function(keys, args) return 'older' end)
"""


def test_the_functions_are_named_after_this_version():
    assert LIBRARY == f"permitbus_{VERSION}" and LUA.startswith(f"#!lua name={LIBRARY}\n")
    assert fn("pb_commit") == f"pb_commit_{VERSION}"
    assert f"'{fn('pb_commit')}'" in LUA and f"'{fn('pb_subject')}'" in LUA
    assert "'pb_commit'" not in LUA
    with pytest.raises(KeyError, match="pb_comit"):
        fn("pb_comit")


async def libraries(r) -> set[str]:
    out = set()
    for lib in await r.function_list():
        fields = dict(zip(lib[::2], lib[1::2])) if isinstance(lib, list) else lib
        name = fields.get(b"library_name", fields.get("library_name"))
        out.add(name.decode() if isinstance(name, bytes) else name)
    return out


async def test_an_older_version_keeps_its_functions_when_this_one_loads(r):
    await r.function_load(OLDER, replace=True)
    try:
        await load_functions(r)  # a worker of this version starts (again) beside an older one
        assert {"permitbus", LIBRARY} <= await libraries(r)
        assert await r.fcall("pb_commit", 0) == b"older"  # the older worker still reaches its own
        assert await r.fcall(fn("pb_attempt"), 1, "att:{p0}", "1-0") == 1  # and this one its own
    finally:
        await r.function_delete("permitbus")
