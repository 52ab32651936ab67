"""Configuration from the environment (names of docs/contract.md, prefix ``PERMITBUS_``)."""

from __future__ import annotations

import datetime as dt
import functools
import re

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    # Secrets (the Redis URL's password, the pseudonym key, API tokens) stay out of reprs and of
    # validation errors: no command prints a password or a key (docs/contract.md, "Personal data at rest").
    model_config = SettingsConfigDict(env_prefix="PERMITBUS_", extra="ignore", hide_input_in_errors=True)

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis 7+ to run against (ignored when "
                           "redis_cluster_url is set)", repr=False)
    redis_cluster_url: str | None = Field(
        None, repr=False,
        description="Redis Cluster: the URL of any of its nodes (redis://<node>:<port>); when set, every command "
                    "(the demo aside) runs on the cluster through redis-py's cluster client and redis_url is ignored "
                    "(docs/contract.md, \"Running\")",
    )
    today: dt.date | None = Field(None, description="fixes the evaluation date D (replays, tests)")
    partitions: int = Field(16, ge=1, le=1024, description="number of person partitions evt:{pN}")
    batch_size: int = Field(2500, ge=1, le=5000, description="records read per round trip")
    decider_entries: int = Field(
        16, ge=1, le=1000,
        description="partition-stream entries the decider reads per partition per round trip (an entry holds "
                    "a normalizer batch's events for that partition: about batch_size / partitions under load)",
    )
    decider_cache: int = Field(
        100_000, ge=0, le=10_000_000,
        description="pictures a decider keeps in memory between batches (about 1 KB each; 0: none), shared "
                    "evenly over the partitions; a person met again is then neither read from Redis nor decoded",
    )
    pseudonym_key: SecretStr | None = Field(
        None, description="key of the person pseudonyms (keys of pictures, due dates); at least 32 characters"
    )
    data_key: SecretStr | None = Field(
        None, description="key sealing the ID numbers kept at rest (AES-256-GCM); at least 32 characters"
    )
    data_key_id: int = Field(1, ge=1, le=255, description="the id of PERMITBUS_DATA_KEY, stored with what it seals")
    data_keys: dict[int, SecretStr] = Field(
        default_factory=dict,
        description='older data keys that still open what they sealed, by id, JSON: {"1": "<old key>"}',
    )
    insecure_dev_keys: bool = Field(
        False, description="demos and tests only: run with built-in keys when the keys above are not set"
    )
    quarantine_retention_days: int = Field(
        90, ge=1, description="quarantine and dead-letter streams keep the original records this long"
    )
    outlet_retention_days: int = Field(30, ge=1, description="how long outlets keep decisions")
    audit_retention_days: int = Field(
        1830, ge=1, description="the audit log (audit:*) keeps every decision delivered this long")
    audit_signing_key: SecretStr | None = Field(
        None, repr=False,
        description="permitbus audit sign: the Ed25519 private key signing the audit chains' heads (base64 of "
                    "its 32 raw bytes, or PEM); a secret, never printed")
    audit_signing_key_id: str = Field(
        "1", pattern=r"^[A-Za-z0-9._-]{1,32}$", description="the id stored with each signature")
    audit_public_keys: dict[str, str] = Field(
        default_factory=dict,
        description='permitbus audit verify: public keys of the signatures by key id, JSON: {"1": "<base64 of '
                    'the 32 raw bytes, or PEM>"}')
    consumer: str | None = Field(None, description="consumer name; default host-pid")
    scheduler_interval_s: float = Field(5.0, gt=0, description="how often the scheduler looks at the date")
    max_payload_bytes: int = Field(
        65_536, ge=1024, le=16 * 1024 * 1024,
        description="an ingress payload over this many bytes is quarantined TOO_LARGE (docs/contract.md, \"Limits\")",
    )
    normalizer_read_bytes: int = Field(
        4 * 1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024,
        description="bytes of ingress entries a normalizer reads at a time (with batch_size as the most "
                    "entries): what it holds stays bounded whatever the records' size",
    )
    max_attempts: int = Field(5, ge=1, description="deliveries of a failing record before the dead-letter stream")
    lua_call_bytes: int = Field(
        4 << 20, ge=1024,
        description="bytes of arguments above which a decider commit or a relay step is split into several "
                    "calls (Redis refuses a bulk over proto-max-bulk-len, 512 MB, and a query over 1 GB)",
    )
    lease_ttl_ms: int = Field(10_000, ge=500, description="a dead worker's feed or partitions are taken over after this")
    api_tokens: dict[str, str] = Field(
        default_factory=dict, repr=False,
        description='read API: department -> bearer token, JSON, e.g. {"edu": "…", "health": "…"}',
    )
    api_rate_per_s: float = Field(20.0, gt=0, description="read API: requests per second per token (429 past it)")
    api_burst: int = Field(40, ge=1, description="read API: requests a token may make at once before the rate applies")
    api_snapshot_ttl_s: int = Field(
        300, ge=10, description="read API: how long the pages of one roster read stay readable")
    api_snapshots_max: int = Field(
        22, ge=1, description="read API: paged roster reads a token may start per snapshot TTL (each holds a "
                              "copy of the roster in Redis for the TTL; 429 past it)")
    trace_days: int = Field(
        7, ge=1, le=90, description="permitbus trace: days a record's whereabouts are indexed (record ids only)")
    trace_accepted: list[str] = Field(
        ["psb:permit", "edu:application", "housing:application"],
        description="permitbus trace: the feeds whose every accepted record is indexed too (JSON list). The "
                    "contribution feed is left out by default: indexing each record of its monthly burst cost "
                    "about a quarter of the burst's throughput (BENCHMARKS.md). Quarantined and dead-lettered "
                    "records, and those that led to a decision, are traced on every feed")
    heartbeat_file: str | None = Field(
        None, description="a worker rewrites this file every 2 s while its event loop runs, `ready` or "
                          "`waiting` (for Redis or set-up): the probe of containers, which cannot ask a worker "
                          "over HTTP (services/runtime/heartbeat.py)")
    heartbeat_stale_s: float = Field(
        30.0, gt=0, description="`permitbus up`: a worker whose heartbeat file is older than this is killed and "
                                "started again (its loop is stuck)")
    params_dir: str | None = Field(
        None, description="folder of the dated parameter files the rules read (default: services/rules/params/ of "
                          "the release); read and checked when a service starts, which refuses to start when a file "
                          "is wrong (docs/policy.md, \"Changing a parameter\")")
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    follow_api: str | None = Field(
        None, description="permitbus follow: the read API it takes its snapshots from, e.g. http://10.0.0.5:8080")
    follow_token: SecretStr | None = Field(
        None, description="permitbus follow: the department's bearer token for that API (never printed)")
    log_level: str = "INFO"

    @field_validator("today", mode="before")
    @classmethod
    def _iso_day(cls, value: object) -> object:
        """D only as ``YYYY-MM-DD``: pydantic alone also reads ``0`` or ``1700000000`` as a date
        (seconds since 1970), which would decide everyone as of a day nobody meant."""
        if value is None or isinstance(value, dt.date):
            return value
        if not (isinstance(value, str) and ISO_DAY.fullmatch(value)):
            raise ValueError(f"must be a date YYYY-MM-DD, got {str(value)[:40]!r}")
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"must be a date YYYY-MM-DD, got {value!r}: no such day") from None

    def require_keys(self) -> None:
        """Refuse to start without the deployment's own keys (docs/contract.md, "Personal data at rest").

        Raises ``SystemExit`` with one line naming the variables, never a key's value."""
        missing = [name for name, v in (("PERMITBUS_PSEUDONYM_KEY", self.pseudonym_key),
                                        ("PERMITBUS_DATA_KEY", self.data_key)) if v is None]
        if missing and not self.insecure_dev_keys:
            raise SystemExit(f"permitbus: {' and '.join(missing)} not set: give each a secret string of at least "
                             f"{MIN_KEY_CHARS} characters (for a demo or a test only: PERMITBUS_INSECURE_DEV_KEYS=1)")
        short = [name for name, v in (("PERMITBUS_PSEUDONYM_KEY", self.pseudonym_key),
                                      ("PERMITBUS_DATA_KEY", self.data_key),
                                      *((f"PERMITBUS_DATA_KEYS[{i}]", k) for i, k in self.data_keys.items()))
                 if v is not None and len(v.get_secret_value()) < MIN_KEY_CHARS]
        if short:
            raise SystemExit(f"permitbus: {', '.join(short)} shorter than {MIN_KEY_CHARS} characters")

    def pseudonym_secret(self) -> str:
        self.require_keys()
        return self.pseudonym_key.get_secret_value() if self.pseudonym_key else DEV_PSEUDONYM_KEY

    def data_keyring(self):
        """The ``DataKeys`` of this deployment (the current key seals; older ones open by id)."""
        from services.runtime.sealing import DataKeys

        self.require_keys()
        current = self.data_key.get_secret_value() if self.data_key else DEV_DATA_KEY
        old = {i: k.get_secret_value() for i, k in self.data_keys.items() if i != self.data_key_id}
        return DataKeys(current, self.data_key_id, old)


ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def refusal(exc: ValidationError) -> str:
    """One line naming the variables a start refuses, e.g. ``PERMITBUS_TODAY: must be …``."""
    parts = []
    for err in exc.errors():
        name = "PERMITBUS_" + "_".join(str(x) for x in err["loc"][:1]).upper()
        parts.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


MIN_KEY_CHARS = 32
# Used only with PERMITBUS_INSECURE_DEV_KEYS=1 (demo, tests, benchmarks): public, so worthless.
DEV_PSEUDONYM_KEY = "permitbus-dev-only-change-me"
DEV_DATA_KEY = "permitbus-insecure-dev-data-key-not-a-secret"


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
