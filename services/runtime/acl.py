"""``permitbus acl --passwords FILE``: the Redis ACL file (``aclfile`` format) derived from the
declarations in ``services/runtime/access.py`` (docs/contract.md, "Access").

Each user starts from nothing (``resetkeys resetchannels -@all``) and gets, per declared ``Use``,
one Redis 7 selector ``(+command … %R~key …)``: a command is allowed only on the keys declared with
it, with only the access it needs (``%R~`` read, ``%W~`` append, ``~`` both). Commands that take
no key (PING) are root permissions. The ``default`` user is off. Passwords are written as
``#<sha256>`` so the file holds none.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import re

from services.runtime import access

REQUIRED = ("pb-normalize", "pb-decide", "pb-relay", "pb-schedule", "pb-api", "pb-ops", "pb-up",
            *(f"dept-{d}" for d in ("psb", "hrss", "edu", "housing", "health", "medins", "civil")))
# the administrative user of `permitbus setup`, and the auditors' (`permitbus audit`), when the file names them
OPTIONAL = ("pb-setup", "pb-audit")
_PREFIX = {"R": "%R~", "W": "%W~", "RW": "~"}
_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")


class PasswordError(ValueError):
    pass


def rules(services: list[access.Service]) -> list[str]:
    """The ACL rules (after ``on #hash``) that allow exactly what ``services`` declare."""
    root: set[str] = set()
    selectors: dict[tuple[tuple[str, ...], str], set[str]] = {}
    for s in services:
        for u in s.uses:
            if not u.keys:
                root.update(u.commands)
            else:
                selectors.setdefault((tuple(sorted(set(u.keys))), u.mode), set()).update(u.commands)
    # Then one selector per (commands, access) with all their keys: the same rights in fewer
    # selectors (Redis tries them in turn for every command, functions' inner calls included).
    merged: dict[tuple[tuple[str, ...], str], set[str]] = {}
    for (keys, mode), cmds in selectors.items():
        merged.setdefault((tuple(sorted(cmds)), mode), set()).update(keys)
    out = ["resetkeys", "resetchannels", "-@all", *(f"+{c}" for c in sorted(root))]
    for (cmds, mode), keys in sorted(merged.items(), key=lambda kv: (sorted(kv[1]), kv[0])):
        parts = [f"+{c}" for c in cmds] + [f"{_PREFIX[mode]}{k}" for k in sorted(keys)]
        out.append("(" + " ".join(parts) + ")")
    return out


def password_hash(password: str) -> str:
    return "#" + hashlib.sha256(password.encode()).hexdigest()


def load_passwords(path: str | pathlib.Path) -> dict[str, str]:
    """``{"<user>": "<password>"}``; every required user must have a non-empty password. Errors
    name the user, never a password."""
    try:
        data = json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise PasswordError(f"cannot read the passwords file {path}: {exc.__class__.__name__}") from None
    if not isinstance(data, dict):
        raise PasswordError("the passwords file must hold a JSON object {\"<user>\": \"<password>\"}")
    missing = [u for u in REQUIRED if not isinstance(data.get(u), str) or not data[u]]
    if missing:
        raise PasswordError(f"no password for: {', '.join(missing)}")
    unknown = sorted(set(data) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise PasswordError(f"unknown users in the passwords file: {', '.join(unknown)}")
    return data


def acl_file(passwords: dict[str, str]) -> str:
    """The ACL file: ``default`` off, then every user with its password hash and rights."""
    by_user = access.users()
    lines = ["user default off resetkeys resetchannels -@all"]  # an ACL file has no comments
    for user in (*REQUIRED, *OPTIONAL):
        if user not in passwords:
            continue
        assert _NAME.match(user)
        lines.append(" ".join(["user", user, "on", password_hash(passwords[user]), *rules(by_user[user])]))
    return "\n".join(lines) + "\n"
