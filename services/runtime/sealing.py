"""ID numbers at rest: sealed (encrypted and authenticated) under the deployment's data key.

docs/contract.md, "Personal data at rest": past the normalizer a person is a keyed pseudonym (the key
of the picture), and the full ID number is kept only where a decision must name it again (the
subject of a roster decision, a child or an applicant of an application), sealed with AES-256-GCM
(``cryptography``: a maintained binding of OpenSSL; no home-made cipher).

A sealed value is ``key id (1 byte) | nonce (12 bytes) | ciphertext + tag (16 bytes)``: 47 bytes
for an 18-character ID. The key id says which key opens it, so that a key can be rotated: the
current key (``PERMITBUS_DATA_KEY``, id ``PERMITBUS_DATA_KEY_ID``) seals, every key of
``PERMITBUS_DATA_KEYS`` (``{"<id>": "<key>"}``) still opens what it sealed, and ``permitbus rekey``
re-seals under the current key what an older one sealed. The key id is authenticated too
(associated data), so a value cannot be passed off as sealed under another key.

Opening with the wrong key, or a value that was altered, raises ``SealError``: never garbage.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE = 12
AAD = b"permitbus:id:v1:"
RECORD_AAD = b"permitbus:record:v1:"
AUDIT_AAD = b"permitbus:audit:v1:"
OPEN_CACHE = 65_536  # opened values kept (a person decided again soon is not decrypted again)


class SealError(RuntimeError):
    """A sealed value that the configured keys cannot open: a wrong or missing data key (or an
    altered value). A deployment error, not a record's fault: the worker stops, loudly."""


def derive(key: str) -> bytes:
    """A data key string (at least 32 characters) -> the 256-bit AES key."""
    return hashlib.sha256(b"permitbus data key v1\x00" + key.encode()).digest()


class DataKeys:
    """The data keys of a deployment: one that seals, any number that open (by id)."""

    def __init__(self, current: str, current_id: int = 1, old: dict[int, str] | None = None) -> None:
        if not 1 <= current_id <= 255:
            raise ValueError("a data key id is 1..255")
        self.current_id = current_id
        self._aead = {int(i): AESGCM(derive(k)) for i, k in (old or {}).items()}
        self._aead[current_id] = AESGCM(derive(current))
        self._seal_with = self._aead[current_id]
        self._aad = {i: AAD + bytes((i,)) for i in self._aead}
        self._opened: dict[bytes, str] = {}

    @property
    def ids(self) -> list[int]:
        return sorted(self._aead)

    def seal(self, text: str) -> bytes:
        nonce = os.urandom(NONCE)
        kid = self.current_id
        return bytes((kid,)) + nonce + self._seal_with.encrypt(nonce, text.encode(), self._aad[kid])

    def open(self, sealed: bytes) -> str:
        text = self._opened.get(sealed)
        if text is not None:
            return text
        text = self._decrypt(sealed, AAD).decode()
        if len(self._opened) >= OPEN_CACHE:
            self._opened.clear()
        self._opened[sealed] = text
        return text

    def seal_record(self, data: bytes) -> bytes:
        """A department's whole record (a ``QZ``/``BG``/``ZX`` payload waiting for the decider's
        verdict in ``held{quarantine:psb:permit}``: names and IDs in it), sealed like an ID under
        associated data of its own, so that neither can be passed off as the other."""
        nonce = os.urandom(NONCE)
        kid = self.current_id
        return bytes((kid,)) + nonce + self._seal_with.encrypt(nonce, data, RECORD_AAD + bytes((kid,)))

    def open_record(self, sealed: bytes) -> bytes:
        return self._decrypt(sealed, RECORD_AAD)

    def seal_audit(self, decision: bytes) -> bytes:
        """A decision as the audit log keeps it (services/audit/chain.py): the outlet's payload
        byte for byte, under associated data of its own. Never re-sealed: the audit chain hashes
        the sealed bytes, so a data key stays in ``PERMITBUS_DATA_KEYS`` while audit entries it
        sealed are retained (``permitbus audit verify`` counts them by key id)."""
        nonce = os.urandom(NONCE)
        kid = self.current_id
        return bytes((kid,)) + nonce + self._seal_with.encrypt(nonce, decision, AUDIT_AAD + bytes((kid,)))

    def open_audit(self, sealed: bytes) -> bytes:
        return self._decrypt(sealed, AUDIT_AAD)

    def _decrypt(self, sealed: bytes, aad: bytes) -> bytes:
        if len(sealed) < 1 + NONCE + 16:
            raise SealError("a sealed value is too short to be one")
        kid = sealed[0]
        aead = self._aead.get(kid)
        if aead is None:
            raise SealError(f"a value sealed under data key id {kid}, which this deployment does not have "
                            f"(PERMITBUS_DATA_KEY_ID / PERMITBUS_DATA_KEYS hold ids {self.ids})")
        try:
            return aead.decrypt(sealed[1:1 + NONCE], sealed[1 + NONCE:], aad + bytes((kid,)))
        except InvalidTag:
            raise SealError(f"a value sealed under data key id {kid} does not open with this deployment's key "
                            f"of that id: wrong PERMITBUS_DATA_KEY or PERMITBUS_DATA_KEYS (or altered data)") from None

    def is_current(self, sealed: bytes) -> bool:
        return bool(sealed) and sealed[0] == self.current_id

    def reseal(self, sealed: bytes) -> bytes:
        """``sealed`` under the current key (itself if it already is)."""
        return sealed if self.is_current(sealed) else self.seal(self.open(sealed))


def key_id(sealed: bytes) -> int:
    return sealed[0] if sealed else 0
