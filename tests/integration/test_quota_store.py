"""bot.store.guilds: guild settings, role allowances, member overrides."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from bot.store import guilds

pytestmark = pytest.mark.both_backends  # `db` on SQLite and PostgreSQL (tests/backends.py)

G = 42
T0 = datetime(2025, 6, 1, tzinfo=UTC)


async def test_settings_default_when_never_set(db):
    s = await guilds.get_guild_settings(db, G)
    assert s.guild_id == G
    assert (s.quota_seconds, s.quota_window_seconds, s.hd_weight) == (None, 86_400, 2.0)
    assert (s.max_concurrent_jobs, s.cooldown_seconds, s.monthly_budget_usd) == (None, 0, None)
    assert (s.retention_days, s.log_channel_id, s.updated_at) == (90, None, None)
    assert s.allowance_seconds(60) == 60
    assert s.concurrency_cap(2) == 2


async def test_update_with_db_and_with_conn(db):
    new = await guilds.update_guild_settings(db, G, log_channel_id=5, retention_days=30, now=T0)
    assert (new.log_channel_id, new.retention_days, new.updated_at) == (5, 30, T0)
    async with db.transaction() as conn:
        await guilds.update_guild_settings(conn, G, quota_seconds=120, hd_weight=1.5)
        inside = await guilds.get_guild_settings(conn, G)
    assert (inside.quota_seconds, inside.hd_weight) == (120, 1.5)
    again = await guilds.get_guild_settings(db, G)
    # Earlier fields are kept; only the given ones changed.
    assert (again.log_channel_id, again.retention_days, again.quota_seconds) == (5, 30, 120)
    assert again.allowance_seconds(60) == 120


async def test_none_restores_the_default(db):
    await guilds.update_guild_settings(db, G, hd_weight=3.0, monthly_budget_usd=10.0)
    s = await guilds.update_guild_settings(db, G, hd_weight=None, monthly_budget_usd=None)
    assert (s.hd_weight, s.monthly_budget_usd) == (2.0, None)
    assert (
        await db.fetchval("SELECT hd_weight FROM guild_settings WHERE guild_id = ?", (G,)) is None
    )


async def test_bad_settings_are_refused_and_nothing_is_written(db):
    await guilds.update_guild_settings(db, G, cooldown_seconds=10)
    with pytest.raises(TypeError, match="unknown guild setting"):
        await guilds.update_guild_settings(db, G, quota_minutes=5)
    with pytest.raises(ValidationError):
        await guilds.update_guild_settings(db, G, hd_weight=0.5, cooldown_seconds=20)
    with pytest.raises(ValidationError):
        await guilds.update_guild_settings(db, G, quota_window_seconds=10)
    assert (await guilds.get_guild_settings(db, G)).cooldown_seconds == 10


async def test_role_allowances(db):
    assert await guilds.set_role_allowance(db, G, 7, 30, now=T0) is None
    previous = await guilds.set_role_allowance(db, G, 7, None, now=T0)
    assert previous is not None and previous.seconds == 30
    await guilds.set_role_allowance(db, G, 3, 0, now=T0)
    await guilds.set_role_allowance(db, G + 1, 9, 5, now=T0)
    listed = await guilds.list_role_allowances(db, G)
    assert [(r.role_id, r.seconds) for r in listed] == [(3, 0), (7, None)]
    removed = await guilds.remove_role_allowance(db, G, 7)
    assert removed is not None and removed.seconds is None
    assert await guilds.remove_role_allowance(db, G, 7) is None
    assert await guilds.get_role_allowance(db, G, 7) is None
    with pytest.raises(ValueError, match="between 0 and"):
        await guilds.set_role_allowance(db, G, 7, -1, now=T0)


async def test_member_overrides(db):
    assert await guilds.set_member_allowance(db, G, 100, 0, now=T0) is None
    await guilds.set_member_allowance(db, G, 101, None, now=T0)
    previous = await guilds.set_member_allowance(db, G, 100, 45, now=T0)
    assert previous is not None and previous.seconds == 0
    listed = await guilds.list_member_allowances(db, G)
    assert [(m.user_id, m.seconds) for m in listed] == [(100, 45), (101, None)]
    assert (await guilds.remove_member_allowance(db, G, 101)).seconds is None
    assert await guilds.get_member_allowance(db, G, 101) is None


async def test_member_rules_reads_settings_override_and_matching_roles_in_one_go(db):
    await guilds.update_guild_settings(db, G, quota_seconds=33, cooldown_seconds=4, now=T0)
    await guilds.set_member_allowance(db, G, 100, 0, now=T0)
    await guilds.set_role_allowance(db, G, 1, 10, now=T0)
    await guilds.set_role_allowance(db, G, 2, None, now=T0)
    await guilds.set_role_allowance(db, G, 3, 99, now=T0)
    await guilds.set_role_allowance(db, G + 1, 1, 500, now=T0)
    async with db.transaction() as conn:
        got = await guilds.member_rules(conn, G, 100, [1, 2, 2, 4])
        nobody = await guilds.member_rules(conn, G + 5, 555, [])
    assert got.settings == await guilds.get_guild_settings(db, G)
    assert (got.settings.quota_seconds, got.settings.cooldown_seconds) == (33, 4)
    assert got.override is not None and got.override.seconds == 0
    assert sorted((r.role_id, r.seconds) for r in got.roles) == [(1, 10), (2, None)]
    assert (nobody.settings, nobody.override, nobody.roles) == (
        guilds.GuildSettings(guild_id=G + 5),
        None,
        [],
    )


async def test_two_admins_changing_different_settings_at_once_keep_both(db):
    """Two processes (or two admins) change different settings of one guild at the same
    time: the second change waits for the first and builds on it instead of writing back the
    stale row it read (PostgreSQL lost the first admin's quota before the lock)."""
    await guilds.update_guild_settings(db, G, retention_days=30)
    async with db.transaction() as first:
        await guilds.update_guild_settings(first, G, quota_seconds=120)
        second = asyncio.create_task(guilds.update_guild_settings(db, G, cooldown_seconds=10))
        await asyncio.sleep(0.3)  # the second is reading / waiting meanwhile
        assert not second.done()
    await asyncio.wait_for(second, 5)
    s = await guilds.get_guild_settings(db, G)
    assert (s.quota_seconds, s.cooldown_seconds, s.retention_days) == (120, 10, 30)
