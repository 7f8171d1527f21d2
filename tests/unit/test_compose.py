"""docker-compose.yml: PostgreSQL and the bot as several shard processes.

Docker cannot run here, so the file is parsed (PyYAML, merge keys resolved as compose does)
and each bot service's environment is put through the bot's own settings loader, with the
`${POSTGRES_PASSWORD…}` interpolation done as compose would: every process must be accepted
by the same validation it meets at start, and together they must cover every shard once.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from bot.config import load_settings, parse_shard_ids

ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE = ROOT / "docker-compose.yml"
INTERPOLATION = re.compile(r"\$\{(\w+)(?::\?[^}]*)?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    return INTERPOLATION.sub(lambda m: env[m.group(1)], value)


@pytest.fixture
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def bot_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if name != "postgres"}


def test_postgres_service_is_healthchecked_and_keeps_its_data(compose: dict[str, Any]) -> None:
    pg = compose["services"]["postgres"]
    assert pg["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])
    assert any(v.endswith(":/var/lib/postgresql/data") for v in pg["volumes"])
    assert "${POSTGRES_PASSWORD:?" in pg["environment"]["POSTGRES_PASSWORD"]  # never a default


def test_bot_processes_cover_every_shard_once_on_one_database(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("DATABASE_URL", "SHARD_COUNT", "SHARD_IDS", "INSTANCE_NAME", "DISCORD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    pg = compose["services"]["postgres"]["environment"]
    bots = bot_services(compose)
    assert 2 <= len(bots) <= 3
    shards: list[int] = []
    names, urls, counts = set(), set(), set()
    for service in bots.values():
        env = {k: str(v) for k, v in service["environment"].items()}
        assert set(env) >= {"DATABASE_URL", "SHARD_COUNT", "SHARD_IDS", "INSTANCE_NAME"}
        env["DATABASE_URL"] = interpolate(env["DATABASE_URL"], {"POSTGRES_PASSWORD": "pw"})
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        settings = load_settings()  # what the process checks at start
        assert settings.uses_postgresql
        url = urlsplit(settings.database_url)
        assert (url.hostname, url.path, url.username) == (
            "postgres", f"/{pg['POSTGRES_DB']}", pg["POSTGRES_USER"],
        )  # fmt: skip
        assert settings.shards is not None and settings.shard_count is not None
        shards += parse_shard_ids(env["SHARD_IDS"])
        names.add(settings.instance)
        urls.add(settings.database_url)
        counts.add(settings.shard_count)
        assert service["stop_grace_period"] == "30s"  # above SHUTDOWN_GRACE_SECONDS (20 s)
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["env_file"] == ".env"  # the token and provider keys
        # job files on PostgreSQL: data/ of the working directory, on the shared volume
        assert "jobfiles:/data" in service["volumes"]
        assert not settings.data_dir.is_absolute()
        assert (Path(service["working_dir"]) / settings.data_dir).is_relative_to("/data")
    assert len(counts) == 1 and sorted(shards) == list(range(counts.pop()))
    assert len(names) == len(bots) and len(urls) == 1
    assert set(compose["volumes"]) == {"pgdata", "jobfiles"}


def test_readme_says_how_to_bring_it_up() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## When one process is not enough", 1)[1].split("\n## ", 1)[0]
    assert "cp .env.example .env" in section
    assert "docker compose up -d --build" in section
    assert "POSTGRES_PASSWORD=" in (ROOT / ".env.example").read_text(encoding="utf-8")
