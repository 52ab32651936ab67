"""``python -m benchmarks.large_records``: the normalizer's memory through a burst of large records.

A private Redis; one normalizer process (``permitbus run normalize``), started on an empty feed;
then a burst of ``--records`` payloads of ``--size`` bytes each (64 KiB, the largest a department
may send: well-formed contribution records padded with an unknown field, half of them permit
renewals `QZ` that name no permit, plus ``--too-large`` records of 10 MB that are quarantined
``TOO_LARGE``), published while the normalizer is paused (SIGSTOP: a backlog, as after an outage
or a department's bulk upload), then read at once (SIGCONT). Prints the normalizer's RSS before the burst (the
baseline), its peak (sampled every 10 ms, and the kernel's high-water mark) and at the end.
Measures; asserts nothing (tests/test_bounded_bytes.py asserts the batch bounds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time

from benchmarks.__main__ import Services, private_redis, rss_kb
from schemas.ids import check_digit
from services.runtime import topology as t

CONTRIB, PERMIT = t.FEEDS["hrss:contribution"].ingress, t.FEEDS["psb:permit"].ingress


def person(i: int) -> str:
    body = f"320102{1970 + i % 30}0{1 + i % 9}1{i % 9}{i % 1000:03d}"
    return body + check_digit(body)


def padded(rec: dict, size: int) -> bytes:
    head = json.dumps({**rec, "pad": ""}, ensure_ascii=False).encode()
    return head[:-2] + b"x" * (size - len(head)) + b'"}'


def hwm_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


async def main(args) -> None:
    server, url, r = await private_redis()
    services = Services(url, partitions=16, batch=args.batch)
    try:
        services.start(only=["normalize"])
        proc = services.procs["normalize"]
        while not await r.exists(CONTRIB) or not await r.xinfo_groups(CONTRIB):
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        baseline = rss_kb(proc.pid)
        payloads = {CONTRIB: [], PERMIT: []}
        for i in range(args.records):
            if i % 2:
                rec = {"ywlsh": f"GA{i}", "ywlx": "QZ", "sfzh": person(i), "xm": "张三", "jzzbh": f"NJ{i}",
                       "qfrq": "2026-01-01", "yxqz": "2027-12-31", "czsj": "2026-01-01 09:00:00"}
                payloads[PERMIT].append(padded(rec, args.size))
            else:
                rec = {"LSH": f"RS{i}", "AAC002": person(i), "AAC003": "张三", "AAE140": "110",
                       "AAE002": "202601", "AAB301": "320102", "AAE078": "1"}
                payloads[CONTRIB].append(padded(rec, args.size))
        big = b'{"x": "' + b"x" * 10_000_000 + b'"}'
        peak = baseline
        proc.send_signal(signal.SIGSTOP)
        for i in range(args.too_large):  # first: what a burst of 10 MB records does
            await r.xadd(CONTRIB, {"payload": big})
        for stream, items in payloads.items():
            for j in range(0, len(items), 200):
                pipe = r.pipeline(transaction=False)
                for p in items[j:j + 200]:
                    pipe.xadd(stream, {"payload": p})
                await pipe.execute()
        t0 = time.perf_counter()
        proc.send_signal(signal.SIGCONT)
        while True:
            groups = [(await r.xinfo_groups(s))[0] for s in (CONTRIB, PERMIT)]
            if all(g["lag"] == 0 and g["pending"] == 0 for g in groups):
                break
            if proc.poll() is not None:
                raise RuntimeError("the normalizer exited")
            peak = max(peak, rss_kb(proc.pid))
            await asyncio.sleep(0.01)
        took = time.perf_counter() - t0
        await asyncio.sleep(1.0)
        end, hwm = rss_kb(proc.pid), hwm_kb(proc.pid)
        total = args.records * args.size + args.too_large * len(big)
        print(f"{args.records:,} records of {args.size:,} bytes and {args.too_large} of 10 MB "
              f"({total / 1e6:,.0f} MB) through one normalizer in {took:.1f} s, batch_size {args.batch}")
        print(f"normalizer RSS (MB): baseline {baseline / 1024:.0f}, peak {max(peak, hwm) / 1024:.0f} "
              f"(sampled {peak / 1024:.0f}, high-water mark {hwm / 1024:.0f}), end {end / 1024:.0f}")
    finally:
        services.stop()
        await r.aclose()
        server.terminate()
        server.wait()


def cli(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.large_records", description=__doc__)
    ap.add_argument("--records", type=int, default=3000)
    ap.add_argument("--size", type=int, default=65_536)
    ap.add_argument("--too-large", type=int, default=30, help="records of 10 MB (quarantined TOO_LARGE)")
    ap.add_argument("--batch", type=int, default=2500)
    asyncio.run(main(ap.parse_args(argv)))


if __name__ == "__main__":
    cli()
