"""Configuration from the environment (names of CONTRACT.md, prefix ``PERMITBUS_``)."""

from __future__ import annotations

import datetime as dt
import functools

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PERMITBUS_", extra="ignore")

    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis 7+ to run against")
    redis_cluster_url: str | None = Field(
        None, description="Redis Cluster seed URL; not supported yet (the key layout is cluster-ready)"
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
        "permitbus-dev-only-change-me",
        description="HMAC key for person pseudonyms in Redis keys; set a secret in production",
    )
    outlet_retention_days: int = Field(30, ge=1, description="how long outlets keep decisions")
    consumer: str | None = Field(None, description="consumer name; default host-pid")
    scheduler_interval_s: float = Field(5.0, gt=0, description="how often the scheduler looks at the date")
    max_payload_bytes: int = Field(
        65_536, ge=1024, le=16 * 1024 * 1024,
        description="an ingress payload over this many bytes is quarantined TOO_LARGE (CONTRACT.md)",
    )
    normalizer_read_bytes: int = Field(
        4 * 1024 * 1024, ge=64 * 1024, le=256 * 1024 * 1024,
        description="bytes of ingress entries a normalizer reads at a time (with batch_size as the most "
                    "entries): what it holds stays bounded whatever the records' size",
    )
    max_attempts: int = Field(5, ge=1, description="deliveries of a failing record before the dead-letter stream")
    lease_ttl_ms: int = Field(10_000, ge=500, description="a dead worker's feed or partitions are taken over after this")
    api_tokens: dict[str, str] = Field(
        default_factory=dict,
        description='read API: department -> bearer token, JSON, e.g. {"edu": "…", "health": "…"}',
    )
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    log_level: str = "INFO"


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
