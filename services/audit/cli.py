"""``permitbus audit verify|export|sign|keygen`` (run as the ``pb-audit`` user: services/runtime/access.py).

Exit status: ``verify`` 0 when every audit chain is intact and in step with the outlets, 1 when
not (each problem on a line naming the stream and the entry), 2 when Redis cannot be reached or a
key given cannot be read; ``export`` 0 (its lines on stdout, a count on stderr); ``sign`` 0, or 2
without ``PERMITBUS_AUDIT_SIGNING_KEY``. No key and no full ID number is ever printed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.runtime import topology as t

UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)


def add_parser(sub) -> None:
    au = sub.add_parser("audit", help="the audit log of every disclosure: verify, export, sign")
    acts = au.add_subparsers(dest="action", required=True)
    v = acts.add_parser("verify", help="every audit chain intact and in step with the outlets (exit 0), else 1")
    v.add_argument("--public-key", action="append", default=[], metavar="KID=FILE",
                   help="check the signed heads of key id KID with this Ed25519 public key (repeatable; also "
                        "PERMITBUS_AUDIT_PUBLIC_KEYS)")
    v.add_argument("--json", action="store_true")
    e = acts.add_parser("export", help="the disclosures of a period as JSON lines, ID numbers masked")
    e.add_argument("--from", dest="start", required=True, type=dt.date.fromisoformat, metavar="YYYY-MM-DD")
    e.add_argument("--to", dest="end", required=True, type=dt.date.fromisoformat, metavar="YYYY-MM-DD")
    e.add_argument("--outlet", action="append", choices=[o.split(":", 1)[1] for o in t.AUDITED],
                   help="only this department's outlet (repeatable)")
    acts.add_parser("sign", help="sign the heads of the audit chains (PERMITBUS_AUDIT_SIGNING_KEY), e.g. from cron")
    k = acts.add_parser("keygen", help="make an Ed25519 key pair for `sign`: FILE (private, mode 0600), FILE.pub")
    k.add_argument("--out", required=True, metavar="FILE")


async def main(settings, args: argparse.Namespace, out=print, err=None) -> int:
    err = err or (lambda text: print(text, file=sys.stderr))
    from services.audit import signing

    if args.action == "keygen":
        try:
            priv, pub = signing.keygen(args.out)
        except FileExistsError:
            err(f"permitbus audit keygen: {args.out} exists: not overwritten")
            return 2
        out(f"wrote the private key to {priv} (mode 0600: give it to `permitbus audit sign` as "
            f"PERMITBUS_AUDIT_SIGNING_KEY) and the public key to {pub} (for `permitbus audit verify --public-key`)")
        return 0
    if args.action == "export" and args.end < args.start:
        err("permitbus audit export: --to is before --from")
        return 2
    from services.ops.cli import client

    r = client(settings)
    try:
        if args.action == "verify":
            return await _verify(r, settings, args, out, err)
        if args.action == "export":
            from services.audit.export import export

            keys = settings.data_keyring()  # the decisions rest sealed
            outlets = [f"outlet:{d}" for d in args.outlet] if args.outlet else None
            n = await export(r, keys, settings.partitions, args.start, args.end, out, outlets)
            err(f"{n:,} disclosures from {args.start} to {args.end} (Beijing days)")
            return 0
        if args.action == "sign":
            if settings.audit_signing_key is None:
                err("permitbus audit sign: PERMITBUS_AUDIT_SIGNING_KEY not set (make one: permitbus audit keygen)")
                return 2
            try:
                key = signing.private_key(settings.audit_signing_key.get_secret_value())
            except signing.BadKey as exc:
                err(f"permitbus audit sign: {exc}")
                return 2
            done = await signing.sign(r, key, settings.audit_signing_key_id, settings.audit_retention_days)
            out(f"signed the heads of {', '.join(done)} with key {settings.audit_signing_key_id}" if done
                else "nothing new to sign")
            return 0
    except UNREACHABLE as exc:
        err(f"permitbus audit: Redis cannot be reached ({type(exc).__name__})")
        return 2
    finally:
        await r.aclose()
    return 2


async def _verify(r, settings, args, out, err) -> int:
    from services.audit import signing
    from services.audit.verify import render, verify

    try:
        public = signing.public_keys(settings.audit_public_keys, args.public_key)
    except signing.BadKey as exc:
        err(f"permitbus audit verify: {exc}")
        return 2
    try:
        keys = settings.data_keyring()
    except SystemExit:
        keys = None
        err("permitbus audit verify: no data key: the decisions are not compared with the outlets' (ids are)")
    report = await verify(r, settings.partitions, keys, public)
    if args.json:
        out(json.dumps({"intact": report.intact, "entries": report.entries, "chains": report.streams,
                        "compared": report.compared, "signatures": report.signatures,
                        "unchecked_signatures": report.unchecked_signatures,
                        "key_ids": {str(k): n for k, n in sorted(report.key_ids.items())},
                        "problems": [{"stream": x.stream, "entry": x.entry, "what": x.what}
                                     for x in report.problems]}))
    else:
        out(render(report))
    return 0 if report.intact else 1
