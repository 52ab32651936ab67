"""Measurement only: ``python -m benchmarks --null-cipher`` puts this folder first on the services'
``PYTHONPATH``, so that every service process (and every worker ``permitbus up`` starts) seals
nothing: a sealed value is the key id and the clear bytes, opened by dropping the id. That is the
path without issue 11's encryption (and with its bytes as an ID in clear costs), to price it
against the same code with AES-GCM. Never on a deployment's path: nothing outside ``benchmarks/``
names this folder, and it acts only with ``PERMITBUS_BENCH_NULL_CIPHER=1`` set as well.
"""

import os

if os.environ.get("PERMITBUS_BENCH_NULL_CIPHER") == "1":
    from services.runtime import sealing

    def _seal(self, data) -> bytes:
        return bytes((self.current_id,)) + (data.encode() if isinstance(data, str) else data)

    def _open(self, sealed: bytes, aad: bytes = b"") -> bytes:
        return sealed[1:]

    sealing.DataKeys.seal = _seal
    sealing.DataKeys.seal_record = _seal
    sealing.DataKeys.seal_audit = lambda self, data: _seal(self, data)
    sealing.DataKeys.open = lambda self, sealed: sealed[1:].decode()
    sealing.DataKeys._decrypt = _open
