"""Configuration from environment variables (prefix ``KIBAN_``).

With nothing set, Kiban runs on a SQLite file under ``./var/`` so that a newcomer needs no
database server. Production sets ``KIBAN_DATABASE_URL`` to PostgreSQL, connecting as the
application role (not the table owner, so row-level security applies) and
``KIBAN_MIGRATION_DATABASE_URL`` to the owner that runs migrations.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_sqlite_url() -> str:
    return f"sqlite+aiosqlite:///{Path('var').resolve() / 'kiban.sqlite3'}"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KIBAN_", extra="ignore")

    database_url: str = Field(default_factory=_default_sqlite_url)
    migration_database_url: str | None = None
    app_db_role: str = "kiban_app"
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    # Where residents reach this server (e.g. https://kiban.example.jp), for URLs printed on paper
    # such as the shelter's QR code. Unset: the request's own address, but only when its Host is
    # one of ``allowed_hosts`` (comma-separated), never one a client merely claims.
    public_url: str | None = None
    allowed_hosts: str = "localhost,127.0.0.1"
    sql_echo: bool = False
    # PostgreSQL connections each server process keeps (and may open beyond that at peaks): a
    # request holds one from its first query to its end, so a process serving N requests at once
    # needs about N; 2 processes x (20 + 10) stay under PostgreSQL's default max_connections 100.
    # A connection beyond the pool is closed when returned, and opening one costs PostgreSQL a
    # new backend process: with 10 kept, 50 staff clients opened connections all the time.
    db_pool_size: int = 20
    db_max_overflow: int = 10
    registry_cache_seconds: float = 1.0
    # Background jobs (core/jobs: roster imports, ...) run at once: by the process `kiban serve`
    # starts for them beside its web workers (jobs_process), or else by each server process;
    # 0 = none here (then run `kiban jobs run` somewhere, or imports wait in the queue).
    jobs_workers: int = 1
    # `kiban serve` runs the jobs in a process of their own (ops/jobs_process.py): in a web
    # worker a job waits behind every request at each await, and under load barely moves.
    jobs_process: bool = True
    # How much lower the jobs process's CPU priority is than the web workers' (nice, 0-19), on
    # PostgreSQL: when the cores are all busy, pages go first and an import takes the time left
    # over. Default 0 (the same priority): at 10, under bench/load.py (f) at 50 clients an import
    # registered 2,037 rows in 105 s (19,647 in 100 s at 0) while the others' p99 was already
    # within target. Not applied on SQLite: there the jobs process takes the one write lock in
    # turns with the web server, and at a lower priority it would hold it longer while waiting
    # for a core (priority inversion), making the pages wait instead.
    jobs_nice: int = Field(default=0, ge=0, le=19)
    # After each chunk of a job (at most 0.25 s of work in one transaction, core/jobs), its loop
    # rests this many times the chunk's time before the next, leaving the cores (and SQLite's one
    # write lock) to requests in between. Unset: 0.5 on PostgreSQL; 1.5 on SQLite, where a nice
    # value cannot make way for the pages (above) and one web process shares two cores with
    # the jobs: measured in docs/scaling.md item 25.
    jobs_pause_ratio: float | None = Field(default=None, ge=0, le=20)
    # Which kinds of job this process runs (comma-separated, e.g. "disaster.roster_import" for a
    # process kept for imports); empty = every kind the code registers.
    jobs_kinds: str = ""
    # Build the 名寄せ matchers of open disasters when the process starts, in the background
    # (a million registrations take about 20 s of CPU per process), so that the first clerk to
    # open a record does not wait for it. Off: built by the first record page that needs one.
    matcher_warm: bool = True
    # State every server process must share (sign-in throttle, API key rate limits; see
    # kit/shared.py): "auto" = Redis when redis_url is set, else the database; "memory" is for
    # one process only. The prefix namespaces Redis keys (several deployments on one Redis).
    redis_url: str | None = None
    shared_state: str = "auto"
    shared_state_prefix: str = "kiban:"
    # Addresses of the reverse proxies whose X-Forwarded-For / X-Forwarded-Proto kiban serve
    # believes (comma-separated IPs or networks, "*" for any): the client's address counts for
    # the sign-in throttle only when it came through one of them.
    forwarded_allow_ips: str = "127.0.0.1"
    secret_key: str | None = None
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    # 公的個人認証: PEM bundles of trusted CA certificates (J-LIS in production) and CRL files.
    jpki_trust_anchors: str | None = None
    jpki_crls: str | None = None
    # Development CA and virtual cards (kiban card ...): refused unless explicitly enabled.
    jpki_dev_ca_enabled: bool = False
    jpki_dev_ca_dir: str = "var/dev-ca"
    jpki_challenge_seconds: int = 120
    # GビズID (OpenID Connect): the provider is configuration.
    gbizid_issuer: str | None = None
    gbizid_client_id: str | None = None
    gbizid_client_secret: str | None = None
    gbizid_scope: str = "openid profile email"
    gbizid_corporate_number_claim: str = "corporate_number"
    # Batch 名寄せ: Splink on "duckdb" (inside this process) or "spark"; the Spark master URL
    # ("local[2]": Spark inside this machine; "spark://host:7077", "yarn", "k8s://..." for a cluster,
    # see docs/linkage.md).
    linkage_engine: Literal["duckdb", "spark"] = "duckdb"
    linkage_spark_master: str = "local[2]"
    # Notifications (core/notify): e-mail goes out through this SMTP server. Unset host: e-mails
    # wait in the outbox as 待機中 (staff see 「送信設定がありません」) and in-app notices still appear.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "noreply@kiban.localhost"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_timeout_seconds: float = 10.0
    # Per-tenant sending limits (GOV.UK Notify style): messages a minute and a day (JST). Over the
    # limit, messages wait in the outbox, never dropped. Overrides: "lg_code:per_minute:per_day,...".
    notify_rate_per_minute: int = 3000
    notify_daily_allowance: int = 50000
    notify_limit_overrides: str = ""

    @property
    def effective_migration_url(self) -> str:
        return self.migration_database_url or self.database_url

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def effective_jobs_pause_ratio(self) -> float:
        if self.jobs_pause_ratio is not None:
            return self.jobs_pause_ratio
        return 1.5 if self.is_sqlite else 0.5


@lru_cache
def get_settings() -> Settings:
    return Settings()
