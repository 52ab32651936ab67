"""A private redis-server with the ACL file of ``permitbus acl`` loaded, for the tests that run
services and departments under their own users. Passwords are made per run; the file holds only
their hashes. A ``test-admin`` user (all rights) is added for the tests' own set-up and checks."""

from __future__ import annotations

import contextlib
import json
import pathlib
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

from services.runtime.acl import OPTIONAL, REQUIRED, acl_file
from services.runtime.localredis import free_port, spawn_redis

ADMIN = "test-admin"


@dataclass
class AclRedis:
    port: int
    passwords: dict[str, str]
    acl_path: pathlib.Path
    proc: subprocess.Popen
    tls_port: int | None = None
    ca: pathlib.Path | None = None

    def url(self, user: str) -> str:
        """The user's URL: over TLS (``rediss://``, the test's CA) when the server has a TLS port."""
        if self.tls_port:
            return (f"rediss://{user}:{self.passwords[user]}@127.0.0.1:{self.tls_port}/0"
                    f"?ssl_ca_certs={self.ca}&ssl_cert_reqs=required")
        return f"redis://{user}:{self.passwords[user]}@127.0.0.1:{self.port}/0"

    @property
    def admin(self) -> str:
        return self.url(ADMIN)


def write_acl(directory: pathlib.Path, passwords: dict[str, str]) -> pathlib.Path:
    path = directory / "users.acl"
    (directory / "passwords.json").write_text(json.dumps({u: p for u, p in passwords.items() if u != ADMIN}))
    text = acl_file({u: p for u, p in passwords.items() if u != ADMIN})
    text += f"user {ADMIN} on >{passwords[ADMIN]} ~* &* +@all\n"
    path.write_text(text)
    return path


@contextlib.contextmanager
def acl_redis(directory: pathlib.Path, *, tls: bool = False) -> Iterator[AclRedis]:
    """With ``tls``, also a TLS port with a self-signed certificate made here (openssl), and every
    ``url`` goes through it; the plain port stays for start-up checks."""
    passwords = {u: secrets.token_hex(12) for u in (*REQUIRED, *OPTIONAL, ADMIN)}
    acl = write_acl(directory, passwords)
    conf = directory / "redis.conf"
    text = f"aclfile {acl}\n"
    tls_port = ca = None
    if tls:
        ca, key = directory / "cert.pem", directory / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                        str(ca), "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                       check=True, capture_output=True)
        tls_port = free_port()
        text += (f"tls-port {tls_port}\ntls-cert-file {ca}\ntls-key-file {key}\ntls-ca-cert-file {ca}\n"
                 "tls-auth-clients no\n")
    conf.write_text(text)
    port = free_port()
    proc = spawn_redis(port, str(directory), config=str(conf))
    try:
        yield AclRedis(port, passwords, acl, proc, tls_port, ca)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
