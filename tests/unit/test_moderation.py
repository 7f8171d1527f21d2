"""Blocked members, blocked terms, the /video checks and audit entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot import moderation, textmatch
from bot.db import Database
from bot.moderation import ModerationError, prompt_rules
from bot.store import audit as audit_store

NOW = datetime(2025, 6, 15, 12, 0, tzinfo=UTC)
GUILD = 111
ADMIN = 7
MEMBER = 42


@pytest.fixture(scope="module")
def sandbox():
    box = textmatch.RegexSandbox()
    yield box
    box.close()


async def entries(db: Database, guild_id: int = GUILD) -> list[moderation.AuditEntry]:
    return list(reversed(await moderation.recent_entries(db, guild_id, limit=100)))


# ----- blocked members -------------------------------------------------------------------


async def test_blocked_member_is_refused_until_expiry(db: Database) -> None:
    assert await moderation.check_member(db, GUILD, MEMBER, NOW) is None
    change = await moderation.block_member(
        db,
        GUILD,
        MEMBER,
        actor_id=ADMIN,
        reason="spamming   clips",
        duration=timedelta(hours=2),
        now=NOW,
    )
    assert change.old == "not blocked" and change.new.startswith("blocked until 2025-06-15T14:00")
    message = await moderation.check_member(db, GUILD, MEMBER, NOW + timedelta(minutes=119))
    assert message == moderation.BLOCKED_MEMBER_MESSAGE
    assert "spam" not in message  # neutral: no reason, no expiry
    # Expiry is automatic: nothing runs, the block simply stops applying.
    assert await moderation.check_member(db, GUILD, MEMBER, NOW + timedelta(hours=2)) is None
    # Other guilds and other members are unaffected.
    assert await moderation.check_member(db, GUILD + 1, MEMBER, NOW) is None
    assert await moderation.check_member(db, GUILD, MEMBER + 1, NOW) is None

    [entry] = await entries(db)
    assert (entry.kind, entry.actor_id, entry.target_id) == ("admin", ADMIN, MEMBER)
    assert entry.data["reason"] == "spamming clips"
    assert entry.data["old"] == "not blocked"


async def test_indefinite_block_and_unblock(db: Database) -> None:
    await moderation.block_member(
        db, GUILD, MEMBER, actor_id=ADMIN, reason=None, duration=None, now=NOW
    )
    far = NOW + timedelta(days=3000)
    assert await moderation.check_member(db, GUILD, MEMBER, far) is not None
    change = await moderation.unblock_member(db, GUILD, MEMBER, actor_id=ADMIN, now=far)
    assert change is not None and change.old == "blocked until unblocked"
    assert await moderation.check_member(db, GUILD, MEMBER, far) is None
    # Unblocking someone who is not blocked changes (and audits) nothing.
    assert await moderation.unblock_member(db, GUILD, MEMBER, actor_id=ADMIN, now=far) is None
    assert [e.summary for e in await entries(db)] == [
        f"blocked member {MEMBER} from /video until unblocked",
        f"unblocked member {MEMBER}",
    ]


async def test_reblocking_replaces_the_block_and_records_old_state(db: Database) -> None:
    await moderation.block_member(
        db, GUILD, MEMBER, actor_id=ADMIN, reason="a", duration=timedelta(days=1), now=NOW
    )
    change = await moderation.block_member(
        db, GUILD, MEMBER, actor_id=ADMIN + 1, reason="b", duration=timedelta(hours=1), now=NOW
    )
    assert change.old.startswith("blocked until 2025-06-16")
    assert await moderation.check_member(db, GUILD, MEMBER, NOW + timedelta(hours=2)) is None
    blocks = await moderation.list_blocked_members(db, GUILD, NOW)
    assert [(b.user_id, b.reason, b.blocked_by) for b in blocks] == [(MEMBER, "b", ADMIN + 1)]


async def test_expired_blocks_are_purged_by_housekeeping(db: Database) -> None:
    await moderation.block_member(
        db, GUILD, MEMBER, actor_id=ADMIN, reason=None, duration=timedelta(hours=1), now=NOW
    )
    await moderation.prune_all(db, NOW + timedelta(hours=2))
    assert await db.fetchval("SELECT COUNT(*) FROM blocked_members") == 0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30m", timedelta(minutes=30)),
        ("2h", timedelta(hours=2)),
        ("3d", timedelta(days=3)),
        ("1w", timedelta(weeks=1)),
        ("1d12h", timedelta(hours=36)),
        ("1d 12h", timedelta(hours=36)),
        ("2 hours", timedelta(hours=2)),
        ("90MIN", timedelta(minutes=90)),
        (None, None),
        ("", None),
        ("forever", None),
    ],
)
def test_parse_duration(text: str | None, expected: timedelta | None) -> None:
    assert moderation.parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("soon", "30m"), ("2x", "30m"), ("h2", "30m"), ("0m", "at least"), ("5000d", "at most")],
)
def test_parse_duration_rejects(text: str, message: str) -> None:
    with pytest.raises(ModerationError, match=message):
        moderation.parse_duration(text)


pytestmark = pytest.mark.both_backends  # `db` on SQLite and PostgreSQL (tests/backends.py)


# ----- blocked terms and check_prompt ----------------------------------------------------


async def test_blocked_terms_refuse_prompts(db: Database, sandbox) -> None:
    await moderation.add_blocked_term(
        db, GUILD, "nsfw", is_regex=False, actor_id=ADMIN, now=NOW, sandbox=sandbox
    )
    regex = await moderation.add_blocked_term(
        db, GUILD, r"gr[a@]phic\s+g[o0]re", is_regex=True, actor_id=ADMIN, now=NOW, sandbox=sandbox
    )
    assert await moderation.check_prompt(db, GUILD, "a calm lake at dawn") is None
    assert await moderation.check_prompt(db, GUILD + 1, "nsfw") is None  # other guild

    message = await moderation.check_prompt(db, GUILD, "a Ⓝ-s-f-w scene")
    assert message == "Your prompt contains a blocked term (`Ⓝ-s-f-w`); please rephrase it."

    verdict = await moderation.find_blocked_term(db, GUILD, "very GRAPHIC   gore here")
    assert verdict is not None and verdict.term_id == regex.id and verdict.is_regex
    assert regex.pattern not in verdict.message  # never echo the regex itself
    assert "GRAPHIC gore" in verdict.message  # but say which part of *their* prompt

    # An echoed excerpt cannot break out of its inline code span.
    await moderation.add_blocked_term(
        db, GUILD, "tick", is_regex=False, actor_id=ADMIN, now=NOW, sandbox=sandbox
    )
    message = await moderation.check_prompt(db, GUILD, "t`i`c`k")
    assert message is not None and message.count("`") == 2


async def test_adding_terms_is_validated_and_audited(db: Database, sandbox) -> None:
    term = await moderation.add_blocked_term(
        db, GUILD, "  Blow   Job ", is_regex=False, actor_id=ADMIN, now=NOW, sandbox=sandbox
    )
    assert term.pattern == "Blow Job"
    for duplicate in ["blow job", "BLOW-JOB", "ｂｌｏｗ job"]:
        with pytest.raises(
            ModerationError, match=f"already blocked as term “Blow Job” \\(#{term.id}\\)"
        ):
            await moderation.add_blocked_term(
                db, GUILD, duplicate, is_regex=False, actor_id=ADMIN, now=NOW, sandbox=sandbox
            )
    with pytest.raises(ModerationError, match="invalid"):
        await moderation.add_blocked_term(
            db, GUILD, "(unclosed", is_regex=True, actor_id=ADMIN, now=NOW, sandbox=sandbox
        )
    with pytest.raises(ModerationError, match="Repeating a group"):
        await moderation.add_blocked_term(
            db, GUILD, "(a+)+$", is_regex=True, actor_id=ADMIN, now=NOW, sandbox=sandbox
        )
    with pytest.raises(ModerationError, match="two letters"):
        await moderation.add_blocked_term(
            db, GUILD, "x", is_regex=False, actor_id=ADMIN, now=NOW, sandbox=sandbox
        )
    terms = await moderation.list_blocked_terms(db, GUILD)
    assert [t.pattern for t in terms] == ["Blow Job"]
    [entry] = await entries(db)
    assert entry.data == {
        "setting": "blocked_term",
        "old": None,
        "new": "Blow Job",
        "is_regex": False,
        "term_id": term.id,
    }


async def test_removing_terms(db: Database, sandbox) -> None:
    add = moderation.add_blocked_term
    a = await add(db, GUILD, "gore", is_regex=False, actor_id=ADMIN, now=NOW, sandbox=sandbox)
    b = await add(db, GUILD, "gore", is_regex=True, actor_id=ADMIN, now=NOW, sandbox=sandbox)
    c = await add(db, GUILD, "420", is_regex=False, actor_id=ADMIN, now=NOW, sandbox=sandbox)
    with pytest.raises(ModerationError, match="both a term and a regex"):
        await moderation.remove_blocked_term(db, GUILD, "gore", actor_id=ADMIN, now=NOW)
    removed = await moderation.remove_blocked_term(db, GUILD, f"#{b.id}", actor_id=ADMIN, now=NOW)
    assert removed.id == b.id
    # A digits-only term is found by its text before being taken as a number.
    assert (
        await moderation.remove_blocked_term(db, GUILD, "420", actor_id=ADMIN, now=NOW)
    ).id == c.id
    # An equivalent spelling finds the term.
    assert (
        await moderation.remove_blocked_term(db, GUILD, "G0RE", actor_id=ADMIN, now=NOW)
    ).id == a.id
    with pytest.raises(ModerationError, match="No blocked term"):
        await moderation.remove_blocked_term(db, GUILD, "gore", actor_id=ADMIN, now=NOW)
    assert await moderation.list_blocked_terms(db, GUILD) == []
    removals = [e for e in await entries(db) if e.data.get("new") is None]
    assert [e.data["old"] for e in removals] == ["gore", "420", "gore"]


async def test_regex_timeout_fails_closed(db: Database, monkeypatch) -> None:
    # A catastrophic pattern stored directly (as if added before validation existed).
    await db.execute(
        "INSERT INTO blocked_terms (guild_id, pattern, is_regex, added_by, created_at) "
        "VALUES (?, ?, 1, ?, ?)",
        (GUILD, "(a+)+$", ADMIN, NOW.isoformat()),
    )
    monkeypatch.setattr(prompt_rules, "MATCH_TIME_LIMIT_S", 0.3)
    try:
        assert await moderation.check_prompt(db, GUILD, "aaaa") is not None  # a real match
        message = await moderation.check_prompt(db, GUILD, "a" * 40 + "!")
    finally:
        textmatch.default_sandbox().close()
    assert message == moderation.PROMPT_CHECK_TIMEOUT_MESSAGE


# ----- audit() ---------------------------------------------------------------------------


async def test_audit_queues_for_the_log_channel_only_when_set(db: Database) -> None:
    async with db.transaction() as conn:
        first = await moderation.audit(
            conn, guild_id=GUILD, kind="generation", summary="x", now=NOW
        )
    assert await audit_store.pending_posts(db) == 0
    await moderation.set_log_channel(db, GUILD, 555, actor_id=ADMIN, now=NOW)
    async with db.transaction() as conn:
        second = await moderation.audit(
            conn,
            guild_id=GUILD,
            kind="refusal",
            summary="  refused\n(blocked_word)  ",
            actor_id=MEMBER,
            data={"when": NOW, "reason": "blocked_word"},
            now=NOW,
        )
        await moderation.audit(conn, guild_id=None, kind="generation", summary="cli", now=NOW)
    queued = [r[0] for r in await db.fetchall("SELECT audit_id FROM modlog_outbox ORDER BY 1")]
    assert first not in queued and second in queued
    assert len(queued) == 2  # the log-channel change itself and the refusal
    entry = await audit_store.get_entry(db, second)
    assert entry is not None
    assert entry.summary == "refused (blocked_word)"
    assert entry.data == {"when": NOW.isoformat(sep=" "), "reason": "blocked_word"}


async def test_audit_rejects_bad_kinds(db: Database) -> None:
    async with db.transaction() as conn:
        with pytest.raises(ValueError, match="bad audit kind"):
            await moderation.audit(conn, guild_id=GUILD, kind="DROP TABLE", summary="x", now=NOW)


async def test_log_channel_change_is_audited_old_to_new(db: Database) -> None:
    await moderation.set_log_channel(db, GUILD, 1, actor_id=ADMIN, now=NOW)
    change = await moderation.set_log_channel(db, GUILD, 2, actor_id=ADMIN, now=NOW)
    assert (change.old, change.new) == (1, 2)
    off = await moderation.set_log_channel(db, GUILD, None, actor_id=ADMIN, now=NOW)
    assert (off.old, off.new) == (2, None)
    assert [e.summary for e in await entries(db)] == [
        "mod-log channel: none → channel 1",
        "mod-log channel: channel 1 → channel 2",
        "mod-log channel: channel 2 → none",
    ]


async def test_recent_entries_filter_by_member(db: Database) -> None:
    async with db.transaction() as conn:
        for actor, target in [(1, 2), (2, None), (3, 4), (5, 2)]:
            await moderation.audit(
                conn,
                guild_id=GUILD,
                kind="admin",
                summary=f"{actor}->{target}",
                actor_id=actor,
                target_id=target,
                now=NOW,
            )
    about_two = await moderation.recent_entries(db, GUILD, member_id=2)
    assert [e.summary for e in about_two] == ["5->2", "2->None", "1->2"]
    assert len(await moderation.recent_entries(db, GUILD, limit=2)) == 2
