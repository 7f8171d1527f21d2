"""Settings: the one place every environment variable is read (also from `.env`)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot import limits
from bot.limits import Bound


def default_instance_name() -> str:
    """A process's name when INSTANCE_NAME is not set: host and pid, unique on one host."""
    return f"{socket.gethostname()}-{os.getpid()}"


ProviderName = Literal["bytecompute", "leonardo", "ltx", "simulator"]

DISCORD_API_DEFAULT = "https://discord.com/api/v10"
BYTECOMPUTE_DEFAULT = "https://us-01.bytecompute.ai"
LEONARDO_DEFAULT = "https://cloud.leonardo.ai/api/rest"
LTX_DEFAULT = "https://api.ltx.video"


class ConfigError(Exception):
    """A missing or malformed setting; the message is one line naming the variable."""


class Settings(BaseSettings):
    """Every setting of the bot. Names are the fixed interface in DESIGN.md."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
    )

    discord_token: SecretStr | None = Field(default=None, validation_alias="DISCORD_TOKEN")
    discord_api_base_url: str = Field(
        default=DISCORD_API_DEFAULT, validation_alias="DISCORD_API_BASE_URL"
    )
    database_url: str = Field(default="sqlite:///data/bot.db", validation_alias="DATABASE_URL")

    bytecompute_api_key: SecretStr | None = Field(
        default=None, validation_alias="BYTECOMPUTE_API_KEY"
    )
    bytecompute_base_url: str = Field(
        default=BYTECOMPUTE_DEFAULT, validation_alias="BYTECOMPUTE_BASE_URL"
    )
    leonardo_api_key: SecretStr | None = Field(default=None, validation_alias="LEONARDO_API_KEY")
    leonardo_base_url: str = Field(default=LEONARDO_DEFAULT, validation_alias="LEONARDO_BASE_URL")
    ltx_api_key: SecretStr | None = Field(default=None, validation_alias="LTX_API_KEY")
    ltx_base_url: str = Field(default=LTX_DEFAULT, validation_alias="LTX_BASE_URL")
    # Which LTX-2.3 model makes text/image-to-video (edits and soundtracks are pro-only).
    ltx_model: Literal["ltx-2-3-fast", "ltx-2-3-pro"] = Field(
        default="ltx-2-3-fast", validation_alias="LTX_MODEL"
    )

    default_provider: ProviderName | None = Field(default=None, validation_alias="DEFAULT_PROVIDER")
    simulator_enabled: bool | None = Field(default=None, validation_alias="SIMULATOR_ENABLED")
    # Every numeric setting's range is a `bot.limits.Bound` (the same object as the admin
    # command's where both can set it); bot/limits.py says what each bound protects.
    quota_seconds_per_day: Annotated[int, limits.ALLOWANCE_SECONDS] = Field(
        default=60, validation_alias="QUOTA_SECONDS_PER_DAY"
    )
    dev_guild_id: int | None = Field(default=None, validation_alias="DEV_GUILD_ID")

    # Tuning knobs (not part of the fixed interface; sensible defaults).
    simulator_delay_seconds: Annotated[float, limits.SIMULATOR_DELAY_SECONDS] = Field(
        default=3.0, validation_alias="SIMULATOR_DELAY_SECONDS"
    )
    max_active_jobs_per_member: Annotated[int, limits.JOBS_PER_MEMBER] = Field(
        default=2, validation_alias="MAX_ACTIVE_JOBS_PER_MEMBER"
    )
    provider_requests_per_second: Annotated[float | None, limits.REQUESTS_PER_SECOND] = Field(
        default=None, validation_alias="PROVIDER_REQUESTS_PER_SECOND"
    )
    # While a provider's budget has headroom, this share of its unused calls checks the jobs
    # most likely done early (clips are posted soon after the provider finished, even when
    # the predicted time is far off); 0 turns it off.
    idle_poll_share: Annotated[float, limits.IDLE_POLL_SHARE] = Field(
        default=0.5, validation_alias="IDLE_POLL_SHARE"
    )
    # At shutdown, how long a submission or clip upload in flight may finish (a provider
    # bills a submission it accepted even if the answer is lost). Keep the container's stop
    # timeout above it: `docker stop -t 30`, compose `stop_grace_period: 30s`.
    shutdown_grace_seconds: Annotated[float, limits.SHUTDOWN_GRACE_SECONDS] = Field(
        default=20.0, validation_alias="SHUTDOWN_GRACE_SECONDS"
    )
    # Provider health: no answer this long (a call in flight, or only failed calls) and a
    # provider counts as failing, so new clips go to another one (bot/jobs/health.py).
    provider_no_answer_seconds: Annotated[float, limits.PROVIDER_NO_ANSWER_SECONDS] = Field(
        default=120.0, validation_alias="PROVIDER_NO_ANSWER_SECONDS"
    )
    # Leonardo publishes no LTX-2.3 price: USD per second at 1080p used for quotes (see
    # bot/pricing.py; 1440p costs 2x, 2160p 4x).
    leonardo_fast_usd_per_second: Annotated[float, limits.USD_PER_SECOND] = Field(
        default=0.06, validation_alias="LEONARDO_FAST_USD_PER_SECOND"
    )
    leonardo_pro_usd_per_second: Annotated[float, limits.USD_PER_SECOND] = Field(
        default=0.08, validation_alias="LEONARDO_PRO_USD_PER_SECOND"
    )
    safety_hold_hours: Annotated[float, limits.SAFETY_HOLD_HOURS] = Field(
        default=48.0, validation_alias="SAFETY_HOLD_HOURS"
    )
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")

    # Several processes (issue 14): this process's name, its Discord shards, its job leases.
    instance_name: str | None = Field(default=None, validation_alias="INSTANCE_NAME")
    shard_count: Annotated[int | None, limits.SHARD_COUNT] = Field(
        default=None, validation_alias="SHARD_COUNT"
    )
    shard_ids: str | None = Field(default=None, validation_alias="SHARD_IDS")  # after count
    lease_seconds: Annotated[float, limits.LEASE_SECONDS] = Field(
        default=20.0, validation_alias="LEASE_SECONDS"
    )

    @field_validator(
        "discord_token", "bytecompute_api_key", "leonardo_api_key", "ltx_api_key", mode="before"
    )
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator(
        "dev_guild_id",
        "default_provider",
        "simulator_enabled",
        "provider_requests_per_second",
        "instance_name",
        "shard_count",
        "shard_ids",
        mode="before",
    )
    @classmethod
    def _blank_optional(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator(
        "discord_api_base_url",
        "bytecompute_base_url",
        "leonardo_base_url",
        "ltx_base_url",
        mode="after",
    )
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("database_url", mode="after")
    @classmethod
    def _database_url(cls, value: str) -> str:
        value = value.strip()
        if value.startswith(("postgresql://", "postgres://")):
            host = urlsplit(value).hostname
            if not host and "host=" not in value:
                raise ValueError("must look like postgresql://user:pass@host:port/db")
            return value
        if not value.startswith("sqlite:///") or len(value) <= len("sqlite:///"):
            raise ValueError(
                "must look like sqlite:///path/to/file.db or postgresql://user:pass@host:port/db"
            )
        return value

    @field_validator("instance_name", mode="after")
    @classmethod
    def _instance_name(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if len(value) > 100 or not value.isprintable():
            raise ValueError("must be at most 100 printable characters, e.g. bot-1")
        return value

    @field_validator("shard_ids", mode="after")
    @classmethod
    def _shard_ids(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        count = info.data.get("shard_count")
        if count is None:
            raise ValueError("needs SHARD_COUNT (the total number of shards), e.g. SHARD_COUNT=2")
        ids = parse_shard_ids(value)
        wrong = [i for i in ids if i >= count]
        if wrong:
            raise ValueError(
                f"shard {wrong[0]} is not below SHARD_COUNT={count} (shards are numbered "
                f"0 to {count - 1})"
            )
        return ",".join(str(i) for i in ids)

    @model_validator(mode="after")
    def _provider_consistency(self) -> Settings:
        if self.default_provider is not None and self.default_provider not in self.providers:
            raise ValueError(
                f"DEFAULT_PROVIDER={self.default_provider} is not configured "
                f"(configured: {', '.join(self.providers)})"
            )
        return self

    # ----- derived values -------------------------------------------------------------

    @property
    def simulator_on(self) -> bool:
        if self.simulator_enabled is not None:
            return self.simulator_enabled
        return (
            self.bytecompute_api_key is None
            and self.leonardo_api_key is None
            and self.ltx_api_key is None
        )

    @property
    def providers(self) -> list[str]:
        """Configured providers, in preference order."""
        names: list[str] = []
        if self.bytecompute_api_key is not None:
            names.append("bytecompute")
        if self.leonardo_api_key is not None:
            names.append("leonardo")
        if self.ltx_api_key is not None:
            names.append("ltx")
        if self.simulator_on:
            names.append("simulator")
        return names

    @property
    def effective_default_provider(self) -> str:
        if self.default_provider is not None:
            return self.default_provider
        return self.providers[0] if self.providers else "simulator"

    @property
    def uses_postgresql(self) -> bool:
        return self.database_url.startswith(("postgresql://", "postgres://"))

    @property
    def database_path(self) -> Path:
        """The SQLite file (on PostgreSQL: `data/bot.db`, never opened; see `data_dir`)."""
        if self.uses_postgresql:
            return Path("data") / "bot.db"
        return Path(self.database_url.removeprefix("sqlite:///"))

    @property
    def database_target(self) -> str:
        """What `Database.open` takes: the SQLite path or the PostgreSQL URL."""
        return self.database_url if self.uses_postgresql else str(self.database_path)

    @property
    def data_dir(self) -> Path:
        """Where job inputs and temporary clips live: beside the SQLite database; with
        PostgreSQL, `data/` in the working directory."""
        return self.database_path.parent

    @property
    def instance(self) -> str:
        """This process's name in logs, job leases and `check` (INSTANCE_NAME or host-pid)."""
        return self.instance_name or default_instance_name()

    @property
    def shards(self) -> list[int] | None:
        """The shards this process connects (None: no sharding set, discord.py decides)."""
        if self.shard_ids is not None:
            return parse_shard_ids(self.shard_ids)
        if self.shard_count is not None:
            return list(range(self.shard_count))
        return None

    def owns_guild(self, guild_id: int) -> bool:
        """Whether this process's shards get `guild_id`'s events (Discord's routing:
        shard (guild_id >> 22) % SHARD_COUNT); always, unsharded."""
        shards = self.shards
        if shards is None or self.shard_count is None:
            return True
        return (guild_id >> 22) % self.shard_count in shards

    @property
    def syncs_commands(self) -> bool:
        """Only the process holding shard 0 (or an unsharded one) syncs slash commands."""
        shards = self.shards
        return shards is None or 0 in shards

    def secrets(self) -> list[str]:
        """Every configured secret value, for log scrubbing."""
        out = []
        keys = (self.bytecompute_api_key, self.leonardo_api_key, self.ltx_api_key)
        for secret in (self.discord_token, *keys):
            if secret is not None and secret.get_secret_value():
                out.append(secret.get_secret_value())
        return out


def parse_shard_ids(text: str) -> list[int]:
    """`0,1` or `0-3` (or both: `0-2,5`) → sorted distinct shard ids; ValueError if malformed."""
    ids: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        low, dash, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if dash else first
        except ValueError:
            raise ValueError(f"{part!r} is not a shard number or range; use e.g. 0,1 or 0-3") from (
                None
            )
        if first < 0 or last < first:
            raise ValueError(f"{part!r} is not a shard range; use e.g. 0-3")
        ids.update(range(first, last + 1))
    return sorted(ids)


_FIELD_ENV = {
    name: str(field.validation_alias)
    for name, field in Settings.model_fields.items()
    if isinstance(field.validation_alias, str)
}

# The Bound of each numeric setting, by variable: any error on it is reported as its range.
_ENV_BOUND = {
    _FIELD_ENV.get(name, name.upper()): meta
    for name, field in Settings.model_fields.items()
    for meta in field.metadata
    if isinstance(meta, Bound)
}


def load_settings(**overrides: object) -> Settings:
    """Build Settings, turning a validation error into one readable ConfigError line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            loc = err.get("loc") or ()
            key = str(loc[0]) if loc else ""
            env = _FIELD_ENV.get(key, key.upper() or "configuration")
            bound = _ENV_BOUND.get(env)
            if bound is not None:
                msg = bound.message(whole_number=str(err.get("type", "")).startswith("int_"))
            else:
                msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
            parts.append(f"{env}: {msg}")
        raise ConfigError("invalid configuration: " + "; ".join(parts)) from None
