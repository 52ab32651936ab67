"""``permitbus audit verify``: every audit chain intact, and the audit log and the outlets in step.

For each outlet and partition (services/audit/chain.py), from one snapshot of the outlet's chain
heads (``HGETALL``: ``pb_relay`` moves a head in the step that appends its entries, so everything
up to the snapshot's head is there):

* the chain: the first entry kept chains from the anchor (the genesis, or where a trim left it:
  ``pb_audit_trim``), every entry's ``prev`` is the hash of the entry before it, and the last one
  up to the snapshot hashes to the stored head under the stored id. A break names the stream and
  the entries: one inserted (the entry after it chains from the entry before it), one altered or
  entries removed between two (the hash stops matching there), entries removed at the start (not
  at the anchor) or the end (the head names a later entry), entries added past a head that does
  not move (inserted). Entries appended after the snapshot wait for the next run.
* the count against the outlet, while the outlet holds the entries (``PERMITBUS_OUTLET_RETENTION_DAYS``):
  every outlet entry from the first audited one (``since``; and from the audit retention's bound,
  ``trim``, should that be shorter than the outlet's) up to the snapshot has exactly one
  audit entry under its id, and every audit entry of that range is on the outlet; with the data
  key, each audit entry holds the very decision the outlet holds.
* the signed heads (services/audit/signing.py): each signature checks with the public key of its
  key id, and each entry it names (while retained) still hashes to what was signed, so that even
  a chain rewritten whole, hashes recomputed, shows up to the last signature.

Keyless for the chain and the count (hashes cover the bytes as stored); the data key only to
compare the decisions (a deployment's operator has it; an outside auditor with read access and the
public keys checks the rest). Memory: the outlet's retained ids, not the audit log.
"""

from __future__ import annotations

import collections
import hashlib
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature

from services.audit import chain
from services.audit.signing import heads_message, parse_heads
from services.runtime import topology as t
from services.runtime.redis import stream_id
from services.runtime.sealing import DataKeys, SealError



@dataclass
class Problem:
    stream: str
    entry: str  # the entry (or entries) it is about; '' for the stream as a whole
    what: str

    def __str__(self) -> str:
        return f"{self.stream} {self.entry}: {self.what}" if self.entry else f"{self.stream}: {self.what}"


@dataclass
class Report:
    streams: int = 0
    entries: int = 0
    compared: int = 0  # outlet entries counted against the audit log
    signatures: int = 0  # signed heads checked
    unchecked_signatures: int = 0  # signed heads found with no public key given
    key_ids: collections.Counter = field(default_factory=collections.Counter)  # sealed decisions by data key id
    problems: list[Problem] = field(default_factory=list)

    @property
    def intact(self) -> bool:
        return not self.problems


def _digest(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16).digest()


class _Window:
    """What the count against the outlet needs of the audit entries: their ids from the outlet's
    first retained one on (and, with the data key, a digest of each decision)."""

    def __init__(self, first: tuple[int, int] | None, keys: DataKeys | None) -> None:
        self.first, self.keys = first, keys
        self.seen: dict[bytes, tuple[int, bytes | None]] = {}
        self.twice: list[tuple[bytes, int, int]] = []

    def add(self, eid: bytes, p: int, fields: dict, report: Report, stream: str) -> None:
        if self.first is None or stream_id(eid) < self.first:
            return
        digest = None
        if self.keys is not None and fields.get(b"dec"):
            try:
                digest = _digest(self.keys.open_audit(fields[b"dec"]))
            except SealError as exc:
                report.problems.append(Problem(stream, eid.decode(), f"its decision does not open: {exc}"))
        if eid in self.seen:
            self.twice.append((eid, self.seen[eid][0], p))
        self.seen[eid] = (p, digest)


class _Walk:
    """One chain's walk: the hash the next entry must chain from, the last entry taken."""

    def __init__(self, stream: str, anchor: bytes, report: Report, window: _Window, p: int,
                 signed: dict[bytes, tuple[bytes, str]]) -> None:
        self.stream, self.expected, self.report, self.window, self.p, self.signed = stream, anchor, report, window, p, signed
        self.last: bytes | None = None
        self.before: tuple[bytes | None, bytes] | None = None  # (id, expected) before the last entry taken

    def problem(self, entry: str, what: str) -> None:
        self.report.problems.append(Problem(self.stream, entry, what))

    def entry(self, eid: bytes, fields: dict, nxt: dict | None) -> None:
        """Take entry ``eid``; ``nxt``: the fields of the entry after it, if any."""
        if fields.get(b"prev") != self.expected:
            if nxt is not None and nxt.get(b"prev") == self.expected:
                # the next one chains from the entry before this one: this one is none of the chain's
                self.problem(eid.decode(), "inserted" + (f" (after {self.last.decode()})" if self.last else ""))
                return
            if self.before is not None and fields.get(b"prev") == self.before[1]:
                # this one chains from the entry before the last one: the last one is none of the chain's
                after = f" (after {self.before[0].decode()})" if self.before[0] else ""
                self.problem(self.last.decode(), "inserted" + after)
            elif self.last is None:
                self.problem(eid.decode(), "removed: entries before it (it does not chain from where the chain "
                                           "starts)")
            else:
                self.problem(f"{self.last.decode()}..{eid.decode()}",
                             f"the chain breaks: {self.last.decode()} altered, or entries removed between them")
        self.report.entries += 1
        self.report.key_ids[(fields.get(b"dec") or b"\0")[0]] += 1
        self.window.add(eid, self.p, fields, self.report, self.stream)
        self.before = (self.last, self.expected)
        self.expected = chain.entry_hash(fields.items())
        self.last = eid
        if eid in self.signed:
            h, sig = self.signed.pop(eid)
            if h != self.expected:
                self.problem(eid.decode(), f"altered since it was signed (signature {sig})")


async def _chain(r, outlet: str, p: int, heads: dict[bytes, bytes], signed: dict[bytes, tuple[bytes, str]],
                 window: _Window, report: Report) -> None:
    """Walk one chain up to the snapshot's head (module docstring)."""
    stream = t.audit(outlet, p)
    head_hash, head_id = heads.get(str(p).encode()), heads.get(f"{p}:id".encode())
    if head_id is None:  # nothing ever audited here, as far as the head says
        extra = await r.xrange(stream, "-", "+", count=1)
        if extra:
            report.problems.append(Problem(stream, extra[0][0].decode(), "inserted: an audit entry where no head was "
                                                                         "ever stored"))
        return
    report.streams += 1
    anchor = heads.get(f"{p}:anchor".encode()) or chain.genesis(stream)
    first = await r.xrange(stream, "-", head_id, count=1)
    if first and first[0][1].get(b"prev") != anchor:  # trimmed since the snapshot? then where it starts now
        anchor = await r.hget(t.audit_head(outlet), f"{p}:anchor") or anchor
    walk = _Walk(stream, anchor, report, window, p, signed)
    held: tuple[bytes, dict] | None = None
    async for eid, fields in chain.pages(r, stream, "-", head_id):
        if held is not None:
            walk.entry(*held, fields)
        held = (eid, fields)
    if held is not None:
        walk.entry(*held, None)
    if walk.last is None:
        if anchor != head_hash:
            walk.problem(head_id.decode(), "removed: the head names this entry and the stream holds none up to it")
    elif walk.last != head_id:
        walk.problem(f"{walk.last.decode()}..{head_id.decode()}",
                     "removed: entries after the last one, up to the one the head names")
    elif walk.expected != head_hash:
        walk.problem(head_id.decode(), "altered: the last entry does not hash to the stored head")
    # entries past a head that does not move are none of pb_relay's
    later = await r.xrange(stream, b"(" + head_id, "+", count=1)
    if later and await r.hget(t.audit_head(outlet), f"{p}:id") == head_id:
        walk.problem(later[0][0].decode(), "inserted: an entry after the head")
    kept = await r.xrange(stream, "-", "+", count=1)
    for eid, (_, sig) in sorted(signed.items()):
        if stream_id(eid) > stream_id(head_id) or (kept and stream_id(eid) >= stream_id(kept[0][0])):
            walk.problem(eid.decode(), f"removed: signed (signature {sig}) and no longer there")


async def _signatures(r, outlet: str, public: dict, report: Report) -> dict[int, dict[bytes, tuple[bytes, str]]]:
    """Check every signed head of ``outlet``; returns partition -> {signed entry id: (hash, signature id)}."""
    signed: dict[int, dict[bytes, tuple[bytes, str]]] = collections.defaultdict(dict)
    key = t.audit_signatures(outlet)
    async for sid, f in chain.pages(r, key, "-", "+"):
        kid = f.get(b"kid", b"").decode("utf-8", "replace")
        pub = public.get(kid)
        if pub is None:
            if public:
                report.problems.append(Problem(key, sid.decode(), f"signed with key id {kid!r}, which no public key "
                                                                  "given names"))
            else:
                report.unchecked_signatures += 1
            continue
        try:
            pub.verify(f.get(b"sig", b""), heads_message(outlet, f.get(b"at", b""), f.get(b"heads", b"")))
            heads = parse_heads(f[b"heads"])
        except (InvalidSignature, ValueError):
            report.problems.append(Problem(key, sid.decode(), f"the signature does not verify with key {kid!r}"))
            continue
        report.signatures += 1
        for p, eid, h in heads:
            signed[p][eid] = (h, sid.decode())
    return signed


async def verify(r, partitions: int, keys: DataKeys | None = None, public: dict | None = None) -> Report:
    report = Report()
    for outlet in t.AUDITED:
        signed = await _signatures(r, outlet, public or {}, report)
        heads = await r.hgetall(t.audit_head(outlet))  # the snapshot
        parts = chain.partitions(heads, partitions)
        ids = [stream_id(heads[f"{p}:id".encode()]) for p in parts if f"{p}:id".encode() in heads]
        bound = max(ids) if ids else None
        first_outlet = await r.xrange(outlet, "-", "+", count=1)
        since, trim = heads.get(b"since"), heads.get(b"trim")
        lo = max(stream_id(first_outlet[0][0]), stream_id(since), stream_id(trim)) if first_outlet and since else None
        window = _Window(lo, keys)
        for p in parts:
            await _chain(r, outlet, p, heads, signed.get(p, {}), window, report)
        if lo is None or bound is None or lo > bound:
            continue
        await _count(r, outlet, lo, bound, window, report)
    return report


async def _count(r, outlet: str, lo: tuple[int, int], bound: tuple[int, int], window: _Window,
                 report: Report) -> None:
    problems = report.problems
    for eid, p, q in window.twice:
        problems.append(Problem(outlet, eid.decode(), f"audited twice: in {t.audit(outlet, p)} and {t.audit(outlet, q)}"))
    seen = {eid: v for eid, v in window.seen.items() if stream_id(eid) <= bound}
    async for eid, fields in chain.pages(r, outlet, f"{lo[0]}-{lo[1]}", f"{bound[0]}-{bound[1]}"):
        report.compared += 1
        got = seen.pop(eid, None)
        if got is None:
            problems.append(Problem(outlet, eid.decode(), "delivered and not audited (its audit entry was removed)"))
        elif got[1] is not None and got[1] != _digest(fields.get(b"payload", b"")):
            problems.append(Problem(t.audit(outlet, got[0]), eid.decode(), "its decision is not the one the outlet "
                                                                          "holds"))
    for eid, (p, _) in sorted(seen.items(), key=lambda kv: stream_id(kv[0])):
        problems.append(Problem(t.audit(outlet, p), eid.decode(), "inserted: audited, and not on the outlet"))


def render(report: Report) -> str:
    lines = [str(x) for x in report.problems]
    keys = ", ".join(f"{k}: {n:,}" for k, n in sorted(report.key_ids.items())) or "none"
    sig = f"{report.signatures:,} signed heads checked"
    if report.unchecked_signatures:
        sig += f", {report.unchecked_signatures:,} not checked (no public key given)"
    lines.append(f"{'intact' if report.intact else f'NOT INTACT: {len(report.problems)} problems'}: "
                 f"{report.entries:,} audit entries in {report.streams} chains; {report.compared:,} outlet entries "
                 f"counted against them; {sig}; decisions sealed under data key ids {keys}")
    return "\n".join(lines)
