"""Settings read from the environment (prefix ``RAPPORT_``) or a ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RAPPORT_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=Path("data"), description="Where the SQLite file and keys live.")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; defaults to a SQLite file in the data directory.",
    )
    secret_key: str | None = Field(
        default=None,
        description="Secret for signing cursors; generated into the data directory when unset.",
    )
    access_token_minutes: int = 15
    refresh_token_days: int = 14
    max_body_bytes: int = Field(default=1_048_576, description="Largest accepted request body.")
    login_max_failures: int = Field(default=5, description="Failed logins before 429.")
    login_window_seconds: int = 900
    default_phone_region: str = Field(default="CN", description="Region for numbers typed without +.")
    import_revert_days: int = Field(default=30, ge=0, description="How long an import can be reverted.")
    import_stale_seconds: int = Field(
        default=900,
        ge=1,
        description="A running import whose heartbeat (one per batch) is older than this is interrupted.",
    )
    import_sweep_seconds: int = Field(
        default=60, ge=0, description="How often the server looks for interrupted imports (0: at start only)."
    )
    import_prepare_process: Literal["auto", "always", "never"] = Field(
        default="auto",
        description="Prepare customer files in a second process while the job writes (auto: from 2 MiB).",
    )
    import_upload_hours: int = Field(
        default=24, ge=1, description="Delete import-wizard uploads never started as a job after this long."
    )
    page_size_max: int = 200
    demo_password: str | None = None
    analytics_path: Path | None = Field(
        default=None,
        description="DuckDB file of the analytics store; defaults to analytics.duckdb in the data directory.",
    )
    # -- privacy: data-subject requests and retention (rapport.privacy) ----------------------------
    dsr_jurisdiction: str = Field(
        default="PIPL", description="Law whose deadlines new data-subject requests get: PIPL or GDPR."
    )
    dsr_deadline_days_pipl: int = Field(default=15, ge=1, description="PIPL: answer within 15 days.")
    dsr_deadline_months_gdpr: int = Field(default=1, ge=1, description="GDPR art. 12(3): one month.")
    dsr_extension_days_pipl: int = Field(default=15, ge=1, description="One extension, with a reason.")
    dsr_extension_months_gdpr: int = Field(default=2, ge=1, description="GDPR: up to two more months.")
    dsr_export_days: int = Field(default=30, ge=1, description="Keep a produced export this many days.")
    dsr_case_years: int = Field(default=3, ge=1, description="Keep closed cases (free text purged).")
    retention_inactive_customer_years: int = Field(
        default=3, ge=1, description="Anonymise customers with no activity for this many years."
    )
    retention_interaction_months: int = Field(
        default=24, ge=1, description="Delete interaction subjects and bodies older than this."
    )
    retention_chat_months: int = Field(
        default=6, ge=1, description="Delete chat transcripts (interactions of kind chat) older than this."
    )
    retention_token_days: int = Field(default=30, ge=1, description="Keep expired or revoked tokens.")
    complaint_acknowledge_days: int = Field(default=3, description="Privacy complaints: days to acknowledge.")
    complaint_resolve_days: int = Field(default=15, description="Privacy complaints: days to resolve.")
    merge_source_ranking: list[str] = Field(
        default=[
            "manual",
            "crm_import",
            "store_visit",
            "referral",
            "trade_show",
            "shop",
            "wechat_mini_program",
            "tmall",
            "jd",
            "douyin",
            "xiaohongshu",
            "online_ads",
            "organic_search",
            "partner",
        ],
        description="Customer merge: acquisition sources from most to least trusted (JSON list); "
        "unlisted sources rank below every listed one.",
    )
    portal_code_minutes: int = Field(default=10, description="Privacy portal: one-time code lifetime.")
    portal_code_attempts: int = Field(default=5, description="Privacy portal: wrong codes before it dies.")
    portal_session_minutes: int = Field(default=15, description="Privacy portal: session token lifetime.")
    portal_codes_per_address: int = Field(default=3, description="Codes per address per rate window.")
    portal_codes_per_ip: int = Field(default=20, description="Codes per client address per rate window.")
    portal_rate_window_seconds: int = 900
    hsts_seconds: int = Field(default=31_536_000, description="Strict-Transport-Security max-age on https.")
    outbound_allow_networks: list[str] = Field(
        default_factory=list,
        description="Networks (CIDR) outbound requests may reach despite the SSRF rules, e.g. an "
        "internal webhook receiver. Empty by default.",
    )
    oidc_issuer: str | None = Field(default=None, description="OpenID Connect issuer URL; enables SSO.")
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_redirect_uri: str | None = Field(
        default=None, description="e.g. https://crm.example.com/api/v1/auth/oidc/callback"
    )
    oidc_scopes: str = "openid email profile"
    oidc_auto_create_role: str | None = Field(
        default=None,
        description="Create unknown SSO users with this role; unset (default): unknown users are refused.",
    )
    pseudonym_key: str | None = Field(
        default=None,
        description="Key of the analysts' stable pseudonyms; derived from the secret key when unset.",
    )
    master_key: SecretStr | None = Field(
        default=None,
        description="Field-encryption master key (64 hex digits or base64 of 32 bytes); when unset, "
        "the file master.key in the data directory, created on first use with mode 0600.",
    )
    field_encryption: bool = Field(
        default=True,
        description="Encrypt contact values at rest. 'off' only to measure what encryption costs.",
    )
    tune_gc: bool = Field(
        default=True,
        description="Freeze start-up objects and collect garbage less often (p99 latency 120 -> 40 ms).",
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'rapport.db').resolve()}"

    @property
    def resolved_analytics_path(self) -> Path:
        return self.analytics_path or self.data_dir / "analytics.duckdb"

    def resolved_secret_key(self) -> str:
        if self.secret_key:
            return self.secret_key
        path = self.data_dir / "secret.key"
        if not path.exists():
            import secrets

            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


@lru_cache
def get_settings() -> Settings:
    return Settings()
