"""Signed heads of the audit chains: ``permitbus audit sign`` and ``permitbus audit keygen``.

The hash chain shows an entry altered, inserted or removed to anyone who recomputes it, but
whoever may write to Redis may also rewrite a whole chain and its head with hashes recomputed
(they need no key). A signature closes that: ``sign`` reads each outlet's heads (one ``HGETALL``:
each partition's last hash and entry id) and appends them, signed with an Ed25519 key the
auditors hold (``PERMITBUS_AUDIT_SIGNING_KEY``, with ``PERMITBUS_AUDIT_SIGNING_KEY_ID``), to
``auditsig{<outlet>}``; ``verify`` checks each signature with the public key of its key id and
that every signed entry still hashes to what was signed. Run it from cron (every few minutes)
where the key lives, not in the relay: the services never hold it.

A signature covers ``heads_message``: a fixed prefix, the outlet, the signing time in ms and the
heads as stored (a line ``<p> <entry id> <hash hex>`` per partition, by partition). Keys are
``cryptography``'s Ed25519; a private key is given as base64 of its 32 raw bytes or as PEM (PKCS
#8), a public key as base64 of its 32 raw bytes or PEM. No command prints a private key.
"""

from __future__ import annotations

import base64
import os
import pathlib
import time

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from services.runtime import topology as t
from services.runtime.retention import minid

PREFIX = b"permitbus:audit-heads:v1\n"


class BadKey(ValueError):
    """A key that cannot be read (the message names the variable or file, never the key)."""


def heads_message(outlet: str, at_ms: bytes | str | int, heads: bytes) -> bytes:
    return PREFIX + outlet.encode() + b"\n" + str(int(at_ms or 0)).encode() + b"\n" + heads


def heads_text(heads: dict[bytes, bytes]) -> bytes:
    """An ``audithead`` hash -> the signed lines, one per partition with a head."""
    lines = []
    for field in sorted((f for f in heads if f.isdigit()), key=int):
        eid = heads.get(field + b":id")
        if eid:
            lines.append(b"%s %s %s\n" % (field, eid, heads[field].hex().encode()))
    return b"".join(lines)


def parse_heads(text: bytes) -> list[tuple[int, bytes, bytes]]:
    """The signed lines -> [(partition, entry id, hash)]."""
    out = []
    for line in text.splitlines():
        p, eid, h = line.split()
        out.append((int(p), eid, bytes.fromhex(h.decode())))
    return out


def _raw_or_pem(text: str, private: bool):
    text = text.strip()
    if text.startswith("-----BEGIN"):
        if private:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        else:
            key = serialization.load_pem_public_key(text.encode())
        if not isinstance(key, Ed25519PrivateKey if private else Ed25519PublicKey):
            raise ValueError("not an Ed25519 key")
        return key
    raw = base64.b64decode(text, validate=True)
    return Ed25519PrivateKey.from_private_bytes(raw) if private else Ed25519PublicKey.from_public_bytes(raw)


def private_key(text: str, where: str = "PERMITBUS_AUDIT_SIGNING_KEY") -> Ed25519PrivateKey:
    try:
        return _raw_or_pem(text, private=True)
    except Exception:  # noqa: BLE001 - say where, never what
        raise BadKey(f"{where}: not an Ed25519 private key (base64 of 32 bytes, or PEM)") from None


def public_key(text: str, where: str) -> Ed25519PublicKey:
    try:
        return _raw_or_pem(text, private=False)
    except Exception:  # noqa: BLE001
        raise BadKey(f"{where}: not an Ed25519 public key (base64 of 32 bytes, or PEM)") from None


def public_keys(configured: dict[str, str], files: list[str]) -> dict[str, Ed25519PublicKey]:
    """``PERMITBUS_AUDIT_PUBLIC_KEYS`` and ``--public-key KID=FILE`` options -> key id -> key."""
    out = {kid: public_key(text, f"PERMITBUS_AUDIT_PUBLIC_KEYS[{kid}]") for kid, text in configured.items()}
    for spec in files:
        kid, sep, path = spec.partition("=")
        if not sep or not kid:
            raise BadKey(f"--public-key {spec!r}: give KID=FILE")
        try:
            text = pathlib.Path(path).read_text()
        except OSError as exc:
            raise BadKey(f"--public-key {kid}: cannot read {path} ({exc.__class__.__name__})") from None
        out[kid] = public_key(text, f"--public-key {kid}")
    return out


async def sign(r, key: Ed25519PrivateKey, kid: str, retention_days: int, now_ms: int | None = None) -> list[str]:
    """Append each outlet's heads, signed, unless they are the ones last signed; keep the signatures
    as long as the audit log. Returns the outlets signed."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    done = []
    for outlet in t.AUDITED:
        text = heads_text(await r.hgetall(t.audit_head(outlet)))
        if not text:
            continue
        key_name = t.audit_signatures(outlet)
        last = await r.xrevrange(key_name, "+", "-", count=1)
        if last and last[0][1].get(b"heads") == text and last[0][1].get(b"kid") == kid.encode():
            continue
        sig = key.sign(heads_message(outlet, now_ms, text))
        await r.xadd(key_name, {"kid": kid, "at": str(now_ms), "heads": text, "sig": sig})
        await r.xtrim(key_name, minid=minid(retention_days, now_ms), approximate=False)
        done.append(outlet)
    return done


def keygen(path: str) -> tuple[pathlib.Path, pathlib.Path]:
    """A new key pair: the private key (base64) in ``path``, created with mode 0600 (refused if it
    exists), the public key in ``path.pub``."""
    key = Ed25519PrivateKey.generate()
    priv = pathlib.Path(path)
    pub = priv.with_name(priv.name + ".pub")
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(base64.b64encode(raw).decode() + "\n")
    pub.write_text(base64.b64encode(key.public_key().public_bytes(serialization.Encoding.Raw,
                                                                   serialization.PublicFormat.Raw)).decode() + "\n")
    return priv, pub
