"""Write Redis's ACL file from passwords in the environment: the ``redis-acl`` job of
deploy/compose.yaml, run in the permitbus image before Redis starts.

Each user of ``permitbus acl`` (services/runtime/acl.py, REQUIRED and OPTIONAL) takes its password
from ``<USER>_PASSWORD``, the user's name upper-cased with ``-`` as ``_`` (``pb-decide``:
``PB_DECIDE_PASSWORD``): the same variables compose puts into each service's Redis URL, so every
password is written once, in deploy/.env. The output is ``permitbus acl --passwords FILE`` for the
same passwords (tests/test_deploy.py compares them); the file holds only ``#<sha256>`` hashes.
A required password missing stops the job (exit 2) naming the variables, never a value.
"""

from __future__ import annotations

import os
import sys

from services.runtime.acl import OPTIONAL, REQUIRED, acl_file


def variable(user: str) -> str:
    return user.upper().replace("-", "_") + "_PASSWORD"


def passwords(environ) -> dict[str, str]:
    return {u: environ[variable(u)] for u in (*REQUIRED, *OPTIONAL) if environ.get(variable(u))}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: acl-from-env.py OUTPUT", file=sys.stderr)
        return 2
    found = passwords(os.environ)
    missing = [variable(u) for u in REQUIRED if u not in found]
    if missing:
        print(f"acl-from-env: no password in {', '.join(missing)} (deploy/.env)", file=sys.stderr)
        return 2
    if "pb-setup" not in found:
        print(f"acl-from-env: no {variable('pb-setup')}: no user can run `permitbus setup`", file=sys.stderr)
    tmp = argv[1] + ".tmp"
    with open(tmp, "w") as f:  # hashes only; Redis (another uid) reads it
        f.write(acl_file(found))
    os.chmod(tmp, 0o644)
    os.replace(tmp, argv[1])
    print(f"acl-from-env: {len(found)} users written to {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
