"""Configuration from the environment (names of CONTRACT.md, prefix ``PERMITBUS_``)."""

from __future__ import annotations

import datetime as dt
import functools
import re

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    # Secrets (the Redis URL's password, the pseudonym key, API tokens) stay out of reprs and of
    # validation errors: no command prints a password or a key (CONTRACT.md).
    model_config = SettingsConfigDict(env_prefix="PERMITBUS_", extra="ignore", hide_input_in_errors=True)

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis 7+ to run against", repr=False)
    redis_cluster_url: str | None = Field(
        None, repr=False, description="Redis Cluster seed URL; not supported yet (the key layout is cluster-ready)"
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
    pseudonym_key: str = Field(
        "permitbus-dev-only-change-me", repr=False,
        description="HMAC key for person pseudonyms in Redis keys; set a secret in production",
    )
    outlet_retention_days: int = Field(30, ge=1, description="how long outlets keep decisions")
    consumer: str | None = Field(None, description="consumer name; default host-pid")
    scheduler_interval_s: float = Field(5.0, gt=0, description="how often the scheduler looks at the date")
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
    api_host: str = "127.0.0.1"
    api_port: int = 8080
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


ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def refusal(exc: ValidationError) -> str:
    """One line naming the variables a start refuses, e.g. ``PERMITBUS_TODAY: must be …``."""
    parts = []
    for err in exc.errors():
        name = "PERMITBUS_" + "_".join(str(x) for x in err["loc"][:1]).upper()
        parts.append(f"{name}: {err['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
