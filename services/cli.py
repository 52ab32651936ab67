"""The ``permitbus`` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from pydantic import ValidationError

from services.runtime.settings import Settings, refusal


def _partitions(spec: str | None, total: int) -> list[int] | None:
    if not spec:
        return None
    out: list[int] = []
    for part in spec.split(","):
        a, _, b = part.partition("-")
        out += list(range(int(a), int(b or a) + 1))
    bad = [p for p in out if not 0 <= p < total]
    if bad:
        raise SystemExit(f"partitions out of range 0..{total - 1}: {bad}")
    return out


def _date(s: str):
    import datetime as dt

    try:
        return dt.date.fromisoformat(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date YYYY-MM-DD: {s!r}") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="permitbus", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)
    upp = sub.add_parser("up", help="run every service, as worker processes, until SIGTERM/SIGINT")
    upp.add_argument("--workers", type=int, metavar="N",
                     help="decider processes (default: one per core); the other roles run one each")
    upp.add_argument("--single", action="store_true", help="every service in this one process")
    run = sub.add_parser("run", help="run one service alone")
    run.add_argument("service", choices=["normalize", "decider", "relay", "scheduler"])
    run.add_argument("--feed", action="append", help="normalize only this feed (repeatable)")
    run.add_argument("--partitions", help="decider/relay: only these partitions, e.g. 0-7 or 0,2,4")
    demo = sub.add_parser("demo", help="simulate Nanjing, run every service on it, print a summary")
    demo.add_argument("--people", type=int, default=20_000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--redis", metavar="URL",
                      help="run on this Redis instead of a private redis-server: only an empty database or one an "
                           "earlier demo marked as its own (any other is refused, untouched)")
    sim = sub.add_parser("simulate", help="publish a simulated Nanjing on the ingress streams")
    sim.add_argument("--people", type=int, default=20_000)
    sim.add_argument("--seed", type=int, default=7)
    fig = sub.add_parser("figures", help="the city's figures per district")
    fig.add_argument("--json", action="store_true")
    topo = sub.add_parser("topology", help="which service reads and writes which stream")
    topo.add_argument("--markdown", action="store_true", help="the README's table of keys")
    sub.add_parser("asyncapi", help="print the AsyncAPI 3.0 document of every stream (JSON)")
    sub.add_parser("setup", help="load the functions, create the consumer groups, check Redis (administrative)")
    acl = sub.add_parser("acl", help="print the Redis ACL file of every service and department user")
    acl.add_argument("--passwords", required=True, help='JSON file {"<user>": "<password>"}')
    rt = sub.add_parser("retick", help="decide every person once more as of today (after a release adds rules)")
    rt.add_argument("--partitions", help="only these partitions, e.g. 0-7 or 3,5 (default: all)")
    rk = sub.add_parser("rekey", help="re-seal every picture under the current data key (after a key rotation)")
    rk.add_argument("--partitions", help="only these partitions, e.g. 0-7")
    rk.add_argument("--check", action="store_true", help="only count sealed values by key id")
    sub.add_parser("api", help="serve the departments' read API (rosters, a subject's entitlements) and /ops")
    fol = sub.add_parser("follow", help="keep a department's PostgreSQL tables in step with its outlet "
                                        "(until SIGTERM/SIGINT)")
    fol.add_argument("dept", choices=["psb", "hrss", "edu", "housing", "health", "medins", "civil"])
    fol.add_argument("--into", required=True, metavar="POSTGRESQL_URL",
                     help="e.g. postgresql://sync@db.health.local/roster (libpq: PGPASSWORD, ~/.pgpass, sslmode work)")
    fol.add_argument("--api", metavar="URL", help="the read API for snapshots (default: PERMITBUS_FOLLOW_API); "
                                                  "the token comes from PERMITBUS_FOLLOW_TOKEN")
    fol.add_argument("--batch", type=int, default=2000, help="outlet entries per transaction (default 2000)")
    fol.add_argument("--once", action="store_true", help="stop once caught up with the outlet (exit 0)")
    status = sub.add_parser("status", help="every stage: backlog, pending, oldest, rate, workers, verdict "
                                           "(exit 0 all OK, 1 otherwise, 2 Redis unreachable)")
    status.add_argument("--json", action="store_true")
    status.add_argument("--watch", nargs="?", type=float, const=2.0, metavar="SECONDS",
                        help="refresh in place (every 2 s by default)")
    tr = sub.add_parser("trace", help="where one department record is now (exit 1: not seen)")
    tr.add_argument("feed", help="e.g. psb:permit")
    tr.add_argument("record_id", help="the department's record id (ywlsh, LSH, sqbh, applicationNo)")
    tr.add_argument("--json", action="store_true")
    ex = sub.add_parser("explain", help="why a rule decides what it decides about one person (IDs masked; "
                                        "exit 1: nothing to explain)")
    ex.add_argument("subject_id", help="the person's ID number (the child's for education)")
    ex.add_argument("entitlement", help="e.g. health.family_doctor")
    ex.add_argument("--as-of", type=_date, metavar="YYYY-MM-DD", help="judge on this date (default: D)")
    ex.add_argument("--application", help="only this application (sqbh, applicationNo)")
    ex.add_argument("--json", action="store_true")
    pc = sub.add_parser("params", help="the dated parameters of the rules (docs/policy.md, \"Parameters\")")
    pcs = pc.add_subparsers(dest="action", required=True)
    pcc = pcs.add_parser("check", help="read and check a parameter folder as a service does at start; print every "
                                       "value with its date (exit 1: a problem, naming the file)")
    pcc.add_argument("dir", nargs="?", help="the folder (default: the one in use: PERMITBUS_PARAMS_DIR, else the "
                                            "release's)")
    pol = sub.add_parser("policy", help="the policy office's situation tests (docs/policy.md, \"Situation tests\")")
    pols = pol.add_subparsers(dest="action", required=True)
    polt = pols.add_parser("test", help="run situation files: pass/fail per situation with a diff, IDs masked "
                                        "(exit 1: a failure)")
    polt.add_argument("files", nargs="+", metavar="FILE", help="YAML situation files")
    polt.add_argument("--coverage", action="store_true",
                      help="also list every condition and reason code of the rules these files do not cover")
    for name in ("quarantine", "dlq"):
        q = sub.add_parser(name, help=f"list, show and re-drive {name} entries")
        qs = q.add_subparsers(dest="action", required=True)
        ql = qs.add_parser("list")
        ql.add_argument("stream", nargs="?", help="e.g. psb:permit (default: all)")
        ql.add_argument("--count", type=int, default=20)
        qsh = qs.add_parser("show")
        qsh.add_argument("stream")
        qsh.add_argument("id")
        qr = qs.add_parser("redrive")
        qr.add_argument("stream")
        qr.add_argument("id", nargs="?", help="one entry (default: all)")
        qr.add_argument("--payload", help="replace the payload (an operator's fix) before re-driving")
    from services.audit.cli import add_parser as add_audit

    add_audit(sub)
    args = ap.parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:  # one line naming the variable, not a traceback
        print(f"permitbus: cannot start: {refusal(exc)}", file=sys.stderr)
        return 2
    from services.runtime.logs import setup

    quiet = args.cmd in ("demo", "simulate", "figures", "quarantine", "dlq", "topology", "setup", "acl", "asyncapi", "rekey", "status", "trace",
                        "explain", "audit", "retick", "params", "policy")
    setup("WARNING" if quiet and "PERMITBUS_LOG_LEVEL" not in os.environ else settings.log_level)

    if args.cmd == "up":
        if args.single:
            from services.runtime.runner import serve

            return asyncio.run(serve(settings))
        from services.runtime.supervisor import up

        if args.workers is not None and args.workers < 1:
            print("permitbus up: --workers must be at least 1", file=sys.stderr)
            return 2
        settings.require_keys()  # here, once, rather than in a crash loop of every worker
        from services.rules import params
        from services.runtime.clock import Clock

        params.start(settings.params_dir, Clock(settings.today).today())  # the same: a bad file, one line
        return up(args.workers, settings.heartbeat_file, settings.heartbeat_stale_s)
    if args.cmd == "run":
        from services.runtime.runner import serve

        return asyncio.run(serve(settings, [args.service], feeds=args.feed,
                                 partitions=_partitions(args.partitions, settings.partitions)))
    if args.cmd == "figures":
        from services.figures.read import by_district, read_counters, render_table
        from services.runtime.redis import client

        async def show() -> None:
            r = client(settings)
            table = by_district(await read_counters(r, settings.partitions))
            await r.aclose()
            print(json.dumps(table, ensure_ascii=False, indent=2) if args.json else render_table(table))

        asyncio.run(show())
        return 0
    if args.cmd == "status":
        from services.ops.status import run as status

        try:
            return asyncio.run(status(settings, args.json, args.watch))
        except KeyboardInterrupt:
            return 0
    if args.cmd == "follow":
        from services.follow.cli import follow

        if not 1 <= args.batch <= 50_000:
            print("permitbus follow: --batch must be 1..50000", file=sys.stderr)
            return 2
        return asyncio.run(follow(settings, args.dept, args.into, args.api, args.batch, args.once))
    if args.cmd == "api":
        from services.outlets.api import serve_api

        return serve_api(settings)
    if args.cmd == "topology":
        from services.runtime.access import markdown_table
        from services.runtime.topology import describe

        if args.markdown:
            print(markdown_table())
            return 0
        for row in describe():
            print(f"{row['service']:<28} (user {row['user']})\n    reads  {row['reads']}\n    group  {row['group']}\n"
                  f"    writes {row['writes']}")
        return 0
    if args.cmd == "asyncapi":
        from services.ops.asyncapi import render

        sys.stdout.write(render())
        return 0
    if args.cmd == "acl":
        from services.runtime.acl import PasswordError, acl_file, load_passwords

        try:
            passwords = load_passwords(args.passwords)
        except PasswordError as exc:
            print(f"permitbus acl: {exc}", file=sys.stderr)
            return 2
        if "pb-setup" not in passwords:
            print("permitbus acl: no pb-setup password: no user of this file can run `permitbus setup`",
                  file=sys.stderr)
        sys.stdout.write(acl_file(passwords))
        return 0
    if args.cmd == "setup":
        from services.runtime.setup import run_setup

        return asyncio.run(run_setup(settings))
    if args.cmd == "rekey":
        from services.ops.rekey import rekey, remaining
        from services.runtime.redis import client, load_functions

        async def run_rekey() -> int:
            keys = settings.data_keyring()  # refuses without the deployment's keys
            parts = _partitions(args.partitions, settings.partitions) or list(range(settings.partitions))
            r = client(settings)
            try:
                if not args.check:
                    await load_functions(r)
                    done = await rekey(r, keys, parts, progress=lambda p, o: print(
                        f"partition {p}: {o.pictures:,} pictures read, {o.resealed:,} re-sealed", flush=True))
                    print(f"{done.pictures:,} pictures in {done.seconds:.1f} s: {done.resealed:,} re-sealed under key "
                          f"{keys.current_id}, {done.raced:,} written by a decider meanwhile")
                left = await remaining(r, keys, parts)
            finally:
                await r.aclose()
            old = {k: n for k, n in sorted(left.items()) if k != keys.current_id}
            print("sealed values by key id: " + (", ".join(f"{k}: {n:,}" for k, n in sorted(left.items())) or "none")
                  + ("" if 0 not in left else " (0: ID numbers still in clear, pictures of an earlier release)"))
            print(f"nothing left under another key than {keys.current_id}: the older keys can go" if not old
                  else f"still needed: key ids {sorted(old)}")
            return 0 if not old else 1

        return asyncio.run(run_rekey())
    if args.cmd == "retick":
        from services.ops.retick import retick
        from services.runtime.clock import Clock
        from services.runtime.redis import client

        async def run_retick() -> int:
            parts = _partitions(args.partitions, settings.partitions) or list(range(settings.partitions))
            day = settings.today or Clock().today()
            r = client(settings)
            try:
                n = await retick(r, parts, day, progress=lambda p, k: print(f"partition {p}: {k:,} people", flush=True))
            finally:
                await r.aclose()
            print(f"{n:,} people to be decided again as of {day.isoformat()} (a date.tick each)")
            return 0

        return asyncio.run(run_retick())
    if args.cmd == "trace":
        from services.ops.trace import main as trace_main

        return asyncio.run(trace_main(settings, args.feed, args.record_id, args.json))
    if args.cmd == "explain":
        from services.ops.explain import main as explain_main

        return asyncio.run(explain_main(settings, args.subject_id, args.entitlement, args.as_of, args.application,
                                        args.json))
    if args.cmd == "params":
        from services.policy.check import check
        from services.rules import params
        from services.runtime.clock import Clock

        return check(params.folder_of(args.dir or settings.params_dir), Clock(settings.today).today())
    if args.cmd == "policy":
        from services.policy.report import main as policy_test

        return policy_test(args.files, settings, coverage=args.coverage)
    if args.cmd == "audit":
        from services.audit.cli import main as audit_main

        return asyncio.run(audit_main(settings, args))
    if args.cmd in ("quarantine", "dlq"):
        from services.ops.cli import operate

        return asyncio.run(operate(settings, args))
    if args.cmd == "demo":
        from services.sim.demo import demo

        return asyncio.run(demo(settings, people=args.people, seed=args.seed, redis=args.redis))
    if args.cmd == "simulate":
        from services.sim.demo import simulate

        return asyncio.run(simulate(settings, people=args.people, seed=args.seed))
    return 2


if __name__ == "__main__":
    sys.exit(main())
