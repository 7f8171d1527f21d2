"""A database written at schema version 1 (only `0001_initial.sql`), filled with realistic
rows — jobs in every status, their events and ledger entries, resets, audit rows and the
mod-log outbox, blocks, blocked terms, allowances, settings — is migrated by the real runner
to the current version. Every old row is kept as it was, the schema is the snapshot, the
derived monthly spend equals the ledger, and the bot's stores read it all back: jobs (with
their negotiated requests), allowances (checked against figures computed here from the
generated ledger), blocks, terms and the audit log. Jobs that were running during the
upgrade can still be settled or refunded exactly once.
"""

from __future__ import annotations

import asyncio
import json
import math
import shutil
import sqlite3
import tempfile
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bot import moderation, quota
from bot.db import MIGRATIONS_DIR, Database, IntegrityError, discover_migrations, to_db_time
from bot.providers.base import Mode, NegotiatedRequest
from bot.store import jobs as job_store
from bot.store import quotas as ledger
from bot.store.jobs import Status
from tests.fuzz.budget import fuzz

NOW = datetime(2025, 7, 2, 12, 0, tzinfo=UTC)  # crosses a month boundary within the data
GUILDS = (101, 202)
REGEX_GUILD = 303  # regex rules live here (checking them needs the sandbox process)
USERS = (1, 2, 3)
ACTIVE = ("pending", "submitted", "running", "downloading", "delivering")
REFUNDED = ("failed", "cancelled", "expired")
STATUSES = (*ACTIVE, "delivered", *REFUNDED)
SIZES = ((1280, 720), (1920, 1080), (768, 768), (1080, 1920))
V1_TABLES = (
    "jobs",
    "job_events",
    "quota_ledger",
    "guild_settings",
    "role_allowances",
    "member_allowances",
    "blocked_members",
    "blocked_terms",
    "audit_log",
    "audit_prune_gate",
    "modlog_outbox",
    "command_sync",
)
EXPECTED_SCHEMA = Path(__file__).resolve().parent.parent / "expected_schema.sql"

text = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=40
) | st.sampled_from(["'); DROP TABLE jobs; --", '"quoted"', "@everyone <@&1>", "ünïcödé 🎬"])
# Minutes ago; never exactly the 24 h window edge (the boundary is tested elsewhere).
ages = st.integers(0, 40 * 1440).filter(lambda m: m != 1440)

job = st.fixed_dictionaries(
    {
        "status": st.sampled_from(STATUSES),
        "guild": st.sampled_from([*GUILDS, None]),  # None: a CLI job (no ledger)
        "user": st.sampled_from(USERS),
        "prompt": text,
        "provider": st.sampled_from(["simulator", "bytecompute", "leonardo"]),
        "duration": st.sampled_from([4, 5, 6, 8, 10]),
        "size": st.sampled_from(SIZES),
        "cost": st.floats(0, 3, allow_nan=False).map(lambda c: round(c, 4)),
        "age": ages,
        "closed_after": st.integers(0, 600),  # minutes after creation (capped at NOW)
        "final_share": st.floats(0.1, 1.0),  # delivered: the length actually made
        "params_drop": st.sets(st.sampled_from(["aspect_ratio", "seed", "extra", "cost_usd"])),
        "note_null": st.booleans(),  # a reserve entry without its JSON note
        "adjusted": st.booleans(),
    }
)
data_sets = st.fixed_dictionaries(
    {
        "jobs": st.lists(job, max_size=25),
        "resets": st.lists(
            st.tuples(st.sampled_from(GUILDS), st.sampled_from(USERS), ages), max_size=3
        ),
        "audits": st.lists(
            st.tuples(
                st.sampled_from([*GUILDS, None]),
                st.sampled_from(["generation", "refusal", "admin", "delete", "cancel", "prune"]),
                text,
                ages,
                st.booleans(),  # still waiting in the mod-log outbox
            ),
            max_size=12,
        ),
        "blocks": st.lists(
            st.tuples(
                st.sampled_from(GUILDS),
                st.sampled_from(USERS),
                st.one_of(st.none(), text),
                st.none() | st.integers(-600, 600).filter(bool),  # expiry, minutes from NOW
            ),
            max_size=4,
        ),
        "terms": st.lists(
            st.tuples(st.sampled_from([*GUILDS, REGEX_GUILD]), text, st.booleans()), max_size=8
        ),
        "settings": st.dictionaries(
            st.sampled_from(GUILDS),
            st.fixed_dictionaries(
                {
                    "quota_seconds": st.one_of(st.none(), st.integers(0, 3600)),
                    "window": st.one_of(st.none(), st.sampled_from([3600, 86400, 7 * 86400])),
                    "hd_weight": st.one_of(st.none(), st.sampled_from([1.0, 2.0, 3.0])),
                    "cooldown": st.one_of(st.none(), st.integers(0, 600)),
                    # What the admin commands store (0 is stored as no budget).
                    "budget": st.one_of(st.none(), st.floats(0.01, 100)),
                }
            ),
        ),
        "member_allowances": st.lists(
            st.tuples(
                st.sampled_from(GUILDS), st.sampled_from(USERS), st.none() | st.integers(0, 999)
            ),
            max_size=3,
        ),
        "role_allowances": st.lists(
            st.tuples(st.sampled_from(GUILDS), st.integers(1, 5), st.none() | st.integers(0, 999)),
            max_size=3,
        ),
    }
)


def at(minutes_ago: int) -> str:
    return to_db_time(NOW - timedelta(minutes=minutes_ago))


def is_hd(size: tuple[int, int]) -> bool:
    return size[0] * size[1] > 1280 * 720


def params_json(j: dict[str, Any]) -> str:
    """The job's negotiated request as older code wrote it (some optional keys missing)."""
    request = NegotiatedRequest(
        prompt=j["prompt"].strip() or "x",
        provider=j["provider"],
        model="m",
        mode=Mode.TEXT,
        duration=j["duration"],
        width=j["size"][0],
        height=j["size"][1],
        fps=25,
        aspect_ratio="16:9",
        seed=42,
        cost_usd=j["cost"],
        extra={"note": "x"},
    )
    data = json.loads(request.model_dump_json())
    for key in j["params_drop"]:
        data.pop(key, None)
    return json.dumps(data)


async def write_v1(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """Create the version-1 database at `path`; returns what the checks need to know."""
    early = path.parent / "migrations-v1"
    early.mkdir()
    shutil.copy(MIGRATIONS_DIR / "0001_initial.sql", early)
    db = await Database.open(path)
    weights: dict[int, float] = {}
    for guild, values in data["settings"].items():
        weights[guild] = values["hd_weight"] or 2.0
    events: list[tuple[int, int, str, dict[str, Any]]] = []  # (minutes ago, order, kind, ...)
    expected: dict[str, Any] = {"jobs": {}}
    try:
        assert await db.migrate(early) == ["0001_initial"]
        async with db.transaction() as conn:
            for guild, v in data["settings"].items():
                await conn.execute(
                    "INSERT INTO guild_settings (guild_id, log_channel_id, quota_seconds,"
                    " quota_window_seconds, hd_weight, cooldown_seconds, monthly_budget_usd,"
                    " updated_at) VALUES (?,?,?,?,?,?,?,?)",
                    (guild, 9, v["quota_seconds"], v["window"], v["hd_weight"], v["cooldown"],
                     v["budget"], at(5)),
                )  # fmt: skip
            for guild, user, seconds in data["member_allowances"]:
                await conn.execute(
                    "INSERT OR REPLACE INTO member_allowances VALUES (?,?,?,?)",
                    (guild, user, seconds, at(3)),
                )
            for guild, role, seconds in data["role_allowances"]:
                await conn.execute(
                    "INSERT OR REPLACE INTO role_allowances VALUES (?,?,?,?)",
                    (guild, role, seconds, at(3)),
                )
            for j in data["jobs"]:
                created = j["age"]
                closed = max(0, created - j["closed_after"])
                status = j["status"]
                done = status not in ACTIVE
                delivered = status == "delivered"
                job_id = await conn.fetchval(
                    "INSERT INTO jobs (guild_id, channel_id, user_id, provider, model, mode,"
                    " prompt, params_json, adjustments_json, status, provider_job_id,"
                    " provider_data_json, seconds, cost_usd, progress, failure_reason, attempts,"
                    " input_dir, interaction_message_id, result_message_id, result_channel_id,"
                    " origin, created_at, submitted_at, provider_done_at, finished_at,"
                    " updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                    " RETURNING id",
                    (
                        j["guild"], 7 if j["guild"] else None, j["user"], j["provider"], "m",
                        "text-to-video", j["prompt"], params_json(j),
                        json.dumps([{"field": "fps", "requested": 50, "actual": 25,
                                     "reason": "budget"}] if j["adjusted"] else []),
                        status, None if status == "pending" else f"pj-{created}",
                        None if status == "pending" else json.dumps({"k": j["prompt"]}),
                        float(j["duration"]), j["cost"], 0.5 if status == "running" else None,
                        j["prompt"] if status in REFUNDED else None, 1,
                        "/data/inputs/x" if status == "pending" else None,
                        1000 + created, 2000 + created if delivered else None,
                        7 if delivered else None, "discord" if j["guild"] else "cli",
                        at(created), None if status == "pending" else at(created),
                        at(closed) if done else None, at(closed) if done else None,
                        at(closed),
                    ),
                )  # fmt: skip
                job_id = int(job_id)
                expected["jobs"][job_id] = j
                await conn.execute(
                    "INSERT INTO job_events (job_id, at, from_status, to_status, reason)"
                    " VALUES (?,?,?,?,?), (?,?,?,?,?)",
                    (job_id, at(created), None, "pending", "created",
                     job_id, at(closed), "pending", status, j["prompt"]),
                )  # fmt: skip
                if j["guild"] is None:
                    continue
                weight = weights.get(j["guild"], 2.0) if is_hd(j["size"]) else 1.0
                reserved = j["duration"] * weight
                note = None if j["note_null"] and weight == 1.0 else ledger.reserve_note(
                    float(j["duration"]), weight, *j["size"]
                )  # fmt: skip
                base = {"guild": j["guild"], "user": j["user"], "job": job_id}
                reserve = {**base, "seconds": reserved, "cost": j["cost"], "note": note}
                events.append((created, len(events), "reserve", reserve))
                if delivered:
                    final = j["duration"] * j["final_share"]
                    charged = min(final * weight, reserved)
                    events.append((closed, len(events), "settle",
                                   {**base, "seconds": charged - reserved, "cost": -j["cost"] / 2,
                                    "note": json.dumps({"final_seconds": final})}))  # fmt: skip
                elif status in REFUNDED:
                    events.append((closed, len(events), "refund",
                                   {**base, "seconds": -reserved, "cost": -j["cost"],
                                    "note": j["prompt"][:500]}))  # fmt: skip
            for guild, user, age in data["resets"]:
                events.append((age, len(events), "reset",
                               {"guild": guild, "user": user, "job": None, "seconds": 0.0,
                                "cost": 0.0, "note": "reset by <@9>"}))  # fmt: skip
            # Ledger ids follow time (oldest first), as the code appends them.
            events.sort(key=lambda e: (-e[0], e[1]))
            expected["ledger"] = []
            for age, _, kind, e in events:
                entry_id = await conn.fetchval(
                    "INSERT INTO quota_ledger (guild_id, user_id, job_id, kind, seconds,"
                    " cost_usd, at, note) VALUES (?,?,?,?,?,?,?,?) RETURNING id",
                    (e["guild"], e["user"], e["job"], kind, e["seconds"], e["cost"], at(age),
                     e["note"]),
                )  # fmt: skip
                expected["ledger"].append({**e, "id": entry_id, "kind": kind, "age": age})
            for guild, kind, summary, age, queued in data["audits"]:
                audit_id = await conn.fetchval(
                    "INSERT INTO audit_log (guild_id, at, kind, actor_id, target_id,"
                    " channel_id, job_id, summary, data_json) VALUES (?,?,?,?,?,?,?,?,?)"
                    " RETURNING id",
                    (guild, at(age), kind, 9, 1, 7, None, summary,
                     json.dumps({"prompt": summary, "reason": kind})),
                )  # fmt: skip
                if queued and guild is not None:
                    await conn.execute(
                        "INSERT INTO modlog_outbox (audit_id, guild_id, attempts, next_try_at,"
                        " last_error) VALUES (?,?,?,?,?)",
                        (audit_id, guild, 2, at(0), "HTTP 503"),
                    )
            for guild, user, reason, expiry in data["blocks"]:
                expires = None if expiry is None else to_db_time(NOW + timedelta(minutes=expiry))
                await conn.execute(
                    "INSERT OR REPLACE INTO blocked_members VALUES (?,?,?,?,?,?)",
                    (guild, user, reason, 9, at(60), expires),
                )
            for guild, pattern, is_regex in data["terms"]:
                regex = is_regex or guild == REGEX_GUILD
                await conn.execute(
                    "INSERT OR IGNORE INTO blocked_terms (guild_id, pattern, is_regex, added_by,"
                    " created_at) VALUES (?,?,?,?,?)",
                    (guild, "a+b" if regex else pattern, int(regex), 9, at(60)),
                )
            await conn.execute(
                "INSERT INTO command_sync VALUES ('global', 'abc123', ?)", (at(100),)
            )
    finally:
        await db.close()
    return expected


def dump(
    path: Path, v1_columns: dict[str, list[str]] | None = None
) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every version-1 table, in the version-1 columns (read from the file
    before migrating, or `v1_columns` after: later migrations may add columns)."""
    with sqlite3.connect(path) as conn:
        out = {}
        for table in V1_TABLES:
            columns = (v1_columns or {}).get(table) or [
                r[1] for r in conn.execute(f"PRAGMA table_info({table})")
            ]
            out[table] = conn.execute(
                f"SELECT {', '.join(columns)} FROM {table} ORDER BY rowid"
            ).fetchall()
    return out


def expected_usage(exp: dict[str, Any], data: dict[str, Any], guild: int, user: int) -> Any:
    """(used, reserved, active) for one member, from the generated ledger alone."""
    window = (data["settings"].get(guild) or {}).get("window") or 86400
    mine = [e for e in exp["ledger"] if e["guild"] == guild and e["user"] == user]
    reset_id = max((e["id"] for e in mine if e["kind"] == "reset"), default=0)
    by_job: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for e in mine:
        if e["job"] is not None:
            by_job[e["job"]].append(e)
    used = reserved = 0.0
    active = 0
    for entries in by_job.values():
        reserve = next(e for e in entries if e["kind"] == "reserve")
        closed = any(e["kind"] in ("settle", "refund") for e in entries)
        active += 0 if closed else 1
        if reserve["id"] > reset_id and reserve["age"] * 60 < window:
            total = sum(e["seconds"] for e in entries)
            if closed:
                used += total
            else:
                reserved += total
    return used, reserved, active


async def check_migrated(path: Path, data: dict[str, Any], exp: dict[str, Any]) -> None:
    with sqlite3.connect(path) as conn:
        v1_columns = {t: [r[1] for r in conn.execute(f"PRAGMA table_info({t})")] for t in V1_TABLES}
    before = dump(path, v1_columns)
    db = await Database.open(path)
    try:
        applied = await db.migrate()
        latest = discover_migrations()[-1]
        assert applied == [name for _, name, _ in discover_migrations()[1:]]
        assert await db.schema_version() == latest[0]
        assert await db.schema_sql() == EXPECTED_SCHEMA.read_text()
    finally:
        await db.close()
    assert dump(path, v1_columns) == before, "migrating changed rows written by version 1"

    db = await Database.open(path)
    try:
        await read_back(db, data, exp)
        await finish_running_jobs(db, exp)
    finally:
        await db.close()


async def read_back(db: Database, data: dict[str, Any], exp: dict[str, Any]) -> None:
    # Jobs and their requests.
    for job_id, j in exp["jobs"].items():
        record = await job_store.get_job(db, job_id)
        assert record is not None and record.status == Status(j["status"])
        assert record.prompt == j["prompt"]
        assert (record.request.width, record.request.height) == j["size"]
        assert record.request.duration == j["duration"]
    active = {r.id for r in await job_store.list_active(db)}
    assert active == {i for i, j in exp["jobs"].items() if j["status"] in ACTIVE}
    # Monthly spend derived by 0002 equals the ledger, per guild and month.
    async with db.transaction() as conn:
        for guild in GUILDS:
            for month in ("2025-05", "2025-06", "2025-07"):
                derived = await ledger.guild_spend(conn, guild, month=month)
                from_ledger = await ledger.guild_spend_from_ledger(conn, guild, month=month)
                assert math.isclose(derived, from_ledger, abs_tol=1e-9), (guild, month)
    # Allowances as the bot computes them, against the generated ledger.
    for guild in GUILDS:
        for user in USERS:
            got = await quota.usage(
                db, guild_id=guild, user_id=user, role_ids=[1, 2], now=NOW, default_seconds=60
            )
            used, reserved, active_count = expected_usage(exp, data, guild, user)
            assert math.isclose(got.used, used, abs_tol=1e-6), (guild, user, got.used, used)
            assert math.isclose(got.reserved, reserved, abs_tol=1e-6)
            assert got.active_jobs == active_count
    # Moderation state.
    for guild in GUILDS:
        blocks = {b.user_id for b in await moderation.list_blocked_members(db, guild, NOW)}
        latest = {(g, u): e for g, u, _, e in data["blocks"]}  # INSERT OR REPLACE: last wins
        wanted = {u for (g, u), e in latest.items() if g == guild and (e is None or e > 0)}
        assert blocks == wanted
        terms = await moderation.list_blocked_terms(db, guild)
        assert all(t.guild_id == guild for t in terms)
        await moderation.check_prompt(db, guild, "a quiet harbour at dawn")  # never raises
        entries = await moderation.recent_entries(db, guild, limit=500)
        assert len(entries) == sum(1 for a in data["audits"] if a[0] == guild)
    # The append-only guarantees hold on migrated data.
    for sql in ("UPDATE audit_log SET summary = 'x'", "UPDATE quota_ledger SET seconds = 0"):
        if await db.fetchval(f"SELECT COUNT(*) FROM {sql.split()[1]}"):
            try:
                await db.execute(sql)
            except IntegrityError as exc:
                assert "append-only" in str(exc)
            else:
                raise AssertionError(f"{sql} was allowed")


async def finish_running_jobs(db: Database, exp: dict[str, Any]) -> None:
    """Jobs admitted by version 1 and still running are closed by today's code, once."""
    running = [
        (i, j) for i, j in exp["jobs"].items() if j["status"] in ACTIVE and j["guild"] is not None
    ]
    for n, (job_id, j) in enumerate(running):
        async with db.transaction() as conn:
            if n % 2:
                await quota.refund(conn, job_id, reason="failed after the upgrade", now=NOW)
            else:
                await quota.settle(conn, job_id, seconds=j["duration"], cost_usd=0.1, now=NOW)
            await quota.refund(conn, job_id, reason="again", now=NOW)  # a no-op
            entries = await ledger.job_entries(conn, job_id)
        kinds = [e.kind for e in entries]
        assert kinds[0] == "reserve" and len(kinds) == 2, kinds
        total = sum(e.seconds for e in entries)
        assert total == 0 if n % 2 else total <= entries[0].seconds + 1e-9
    if running:
        job_id, j = running[0]
        try:
            async with db.transaction() as conn:
                await ledger.insert_entry(
                    conn, guild_id=j["guild"], user_id=j["user"], job_id=job_id,
                    kind="reserve", seconds=1, cost_usd=0, at=NOW,
                )  # fmt: skip
        except IntegrityError:
            pass
        else:
            raise AssertionError("a second reservation for one job was accepted")


@fuzz(25)
@given(data=data_sets)
def test_a_version_1_database_migrates_with_its_data(data: dict[str, Any]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="fuzz-mig-"))
    try:
        path = tmp / "bot.db"

        async def main() -> None:
            exp = await write_v1(path, data)
            await check_migrated(path, data, exp)

        asyncio.run(main())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
