"""The benchmark runner works end to end on a tiny size (it measures; nothing here times it)."""

import subprocess
import sys


def test_benchmark_runner_small():
    """``--acl``: Redis loads the ACL file of ``permitbus acl`` (``default`` off) and every service
    runs as its own user; a key or command a service has no right to fails the run."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--people", "300", "--months", "3",
                           "--burst-months", "1", "--baseline-records", "500", "--latency-seconds", "1",
                           "--latency-rate", "300", "--acl"], capture_output=True, timeout=300)
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()[-3000:]
    assert out.startswith("services as their own ACL users\n"), out
    for row in ("pipeline records/s", "raw redis-py loop records/s", "FastStream per-message records/s",
                "pipeline / FastStream per-message", "pipeline / raw loop", "latency p50 / p99 (ms)",
                "Redis bytes per person", "worker peak RSS (MB)"):
        assert row in out, out


def test_benchmark_runner_up_with_a_bulk_publisher():
    """``--up``: the burst is published meanwhile by ``redis-cli --pipe`` from a file in Redis
    protocol; the run fails unless redis-cli reports one reply per record and no error."""
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--up", "--people", "300", "--months", "3",
                           "--burst-months", "1", "--baseline-records", "300", "--latency-seconds", "1",
                           "--latency-rate", "300"], capture_output=True, timeout=300)
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()[-3000:]
    assert "published meanwhile by redis-cli at " in out, out
    assert "`permitbus up --workers 2`, the burst published meanwhile" in out, out


def test_the_null_cipher_acts_only_where_the_benchmark_puts_it():
    """``--null-cipher`` (measurement only) seals nothing in the service processes it starts, and
    only with both its folder on PYTHONPATH and its variable set."""
    import os
    from pathlib import Path

    from benchmarks.__main__ import NULL_CIPHER

    probe = ("from services.runtime.sealing import DataKeys; k = DataKeys('k' * 32); s = k.seal('32011119900101123X');"
             "assert k.open(s) == '32011119900101123X'; print(len(s), s[1:4])")
    root = str(Path(__file__).resolve().parents[1])
    for extra, expected in (({"PYTHONPATH": str(NULL_CIPHER), "PERMITBUS_BENCH_NULL_CIPHER": "1"}, b"19 b'320'"),
                            ({"PYTHONPATH": str(NULL_CIPHER)}, b"47 "),
                            ({"PERMITBUS_BENCH_NULL_CIPHER": "1"}, b"47 ")):
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PERMITBUS_BENCH_NULL_CIPHER")}
        out = subprocess.run([sys.executable, "-c", probe], env={**env, **extra}, cwd=root, capture_output=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr.decode()
        assert out.stdout.startswith(expected), (extra, out.stdout)


def test_resp_encoding_is_what_redis_reads():
    """The protocol file holds exactly one XADD per record, payload bytes kept as they are."""
    from benchmarks.__main__ import resp_xadds

    data = resp_xadds("ingress:x", [b'{"a":1}', "\u5357\r\n".encode()])
    assert data.count(b"*5\r\n$4\r\nXADD\r\n") == 2
    assert data.endswith(b"$7\r\npayload\r\n$" + str(len("\u5357\r\n".encode())).encode() + b"\r\n"
                         + "\u5357\r\n".encode() + b"\r\n")


def test_stage_runner_small():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.stages", "--people", "300", "--months", "3",
                           "--burst-months", "1", "--top", "10"], capture_output=True, timeout=300)
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()[-3000:]
    normalize, deciders = [line for line in out.splitlines() if " records in " in line]
    assert normalize.startswith("normalize: ") and "/s; CPU s: normalize " in normalize, out
    assert deciders.startswith("decider1 + decider2 + relay: "), out
    assert "xreadgroup" in out and "fcall" in out, out  # Redis's command statistics per stage


def test_follow_benchmark_small():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.follow", "--entries", "600", "--subjects", "400",
                           "--batches", "100,300", "--naive-entries", "50"], capture_output=True, timeout=300)
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()[-3000:]
    for row in ("| follow --batch 100 | 600 |", "| follow --batch 300, without reading ahead | 600 |",
                "| naive: a transaction per entry, synchronous_commit on | 50 |"):
        assert row in out, out
    # every follow run ends with one row per person (its last column; a CPU figure may read 400 too)
    assert sum(line.endswith("| 400 |") for line in out.splitlines()) == 3, out


def test_relay_runner_small():
    proc = subprocess.run([sys.executable, "-m", "benchmarks.relay", "--decisions", "300"], capture_output=True,
                          timeout=120)
    out = proc.stdout.decode()
    assert proc.returncode == 0, out + proc.stderr.decode()[-3000:]
    assert "relay: 300 decisions in " in out and "audited 300;" in out, out
