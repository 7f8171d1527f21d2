"""Prompt rules: a guild's blocked terms and regexes, the /video prompt check, and the
audited admin changes to the list.

`check_prompt` is what /video asks (fail closed: a regex that overruns its time limit
refuses the prompt); `add_blocked_term` / `remove_blocked_term` / `resolve_term` serve
`/videoadmin blockword`. Matching itself is `bot.textmatch`.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import lru_cache

from pydantic import BaseModel, ConfigDict

from bot import textmatch
from bot.db import Database
from bot.moderation.audit import admin_change
from bot.moderation.errors import ModerationError
from bot.store import blocks as block_store
from bot.store.blocks import BlockedTerm

log = logging.getLogger(__name__)

PROMPT_CHECK_TIMEOUT_MESSAGE = (
    "Your prompt couldn't be checked against this server's blocked terms in time; "
    "please shorten or simplify it."
)
PROMPT_CHECK_FAILED_MESSAGE = (
    "Your prompt couldn't be checked against this server's blocked terms right now; "
    "please try again in a moment."
)
MATCH_TIME_LIMIT_S = textmatch.MATCH_TIMEOUT_S  # all of a guild's regexes on one prompt
MAX_TERMS_PER_GUILD = 500
MAX_REGEXES_PER_GUILD = 50


# ----- the check used by /video ----------------------------------------------------------


@lru_cache(maxsize=256)
def _ruleset(rules: tuple[textmatch.Rule, ...]) -> textmatch.RuleSet:
    return textmatch.RuleSet(rules)


async def guild_ruleset(db: Database, guild_id: int) -> textmatch.RuleSet:
    terms = await block_store.list_terms(db, guild_id)
    return _ruleset(tuple(textmatch.Rule(t.id, t.pattern, t.is_regex) for t in terms))


class PromptVerdict(BaseModel):
    """Why a prompt is refused: the member-facing message and, for moderators, the rule."""

    model_config = ConfigDict(frozen=True)

    message: str
    term_id: int | None = None
    is_regex: bool = False
    excerpt: str | None = None  # the part of the prompt that matched


async def find_blocked_term(db: Database, guild_id: int, prompt: str) -> PromptVerdict | None:
    """None when the prompt passes the guild's blocked terms (see `check_prompt`)."""
    rules = await guild_ruleset(db, guild_id)
    if rules.empty:
        return None
    try:
        hit = await rules.match(prompt, time_limit=MATCH_TIME_LIMIT_S)
    except textmatch.RegexTimeout:
        log.warning("blocked-term regexes of guild %s timed out on a prompt", guild_id)
        return PromptVerdict(message=PROMPT_CHECK_TIMEOUT_MESSAGE)
    except textmatch.SandboxError:
        log.exception("blocked-term check failed (guild %s)", guild_id)
        return PromptVerdict(message=PROMPT_CHECK_FAILED_MESSAGE)
    if hit is None:
        return None
    excerpt = hit.excerpt(prompt).replace("`", "'")
    shown = f" (`{excerpt}`)" if excerpt.strip() else ""
    return PromptVerdict(
        message=f"Your prompt contains a blocked term{shown}; please rephrase it.",
        term_id=hit.rule.id,
        is_regex=hit.rule.is_regex,
        excerpt=excerpt,
    )


async def check_prompt(db: Database, guild_id: int, prompt: str) -> str | None:
    """None when the prompt is allowed; else the message for the member.

    The message quotes the part of *their* prompt that matched, never a rule's pattern.
    If the guild's regexes overrun their time limit the prompt is refused (fail closed).
    """
    verdict = await find_blocked_term(db, guild_id, prompt)
    return None if verdict is None else verdict.message


# ----- the list and its admin changes ----------------------------------------------------


async def list_blocked_terms(db: Database, guild_id: int) -> list[BlockedTerm]:
    return await block_store.list_terms(db, guild_id)


def _rule_label(
    term: BlockedTerm | None = None, *, pattern: str = "", is_regex: bool = False
) -> str:
    if term is not None:
        pattern, is_regex = term.pattern, term.is_regex
    return f"regex /{pattern}/" if is_regex else f"term “{pattern}”"


async def add_blocked_term(
    db: Database,
    guild_id: int,
    pattern: str,
    *,
    is_regex: bool,
    actor_id: int,
    now: datetime,
    sandbox: textmatch.RegexSandbox | None = None,
) -> BlockedTerm:
    """Validate and add a term or regex (raises ModerationError saying what to change)."""
    try:
        if is_regex:
            clean = await textmatch.check_regex(pattern, sandbox=sandbox)
            key = clean
        else:
            clean = " ".join(pattern.split())
            key = textmatch.term_key(clean)
    except textmatch.RuleError as exc:
        raise ModerationError(exc.message) from None
    existing = await block_store.list_terms(db, guild_id)
    for term in existing:
        if term.is_regex != is_regex:
            continue
        other = term.pattern if is_regex else _safe_key(term.pattern)
        if other == key:
            raise ModerationError(f"That is already blocked as {_rule_label(term)} (#{term.id}).")
    if len(existing) >= MAX_TERMS_PER_GUILD:
        raise ModerationError(
            f"This server already has {MAX_TERMS_PER_GUILD} blocked terms; remove some first."
        )
    if is_regex and sum(t.is_regex for t in existing) >= MAX_REGEXES_PER_GUILD:
        raise ModerationError(
            f"This server already has {MAX_REGEXES_PER_GUILD} blocked expressions; remove some "
            "first (plain terms are cheaper and catch spelling tricks too)."
        )
    async with db.transaction() as conn:
        term = await block_store.insert_term(
            conn, guild_id=guild_id, pattern=clean, is_regex=is_regex, added_by=actor_id, now=now
        )
        await admin_change(
            conn,
            guild_id=guild_id,
            actor_id=actor_id,
            setting="blocked_term",
            summary=f"added blocked {_rule_label(term)} (#{term.id})",
            old=None,
            new=clean,
            details={"is_regex": is_regex, "term_id": term.id},
            now=now,
        )
    return term


def _safe_key(pattern: str) -> str | None:
    try:
        return textmatch.term_key(pattern)
    except textmatch.RuleError:
        return None


async def resolve_term(db: Database, guild_id: int, text: str) -> BlockedTerm:
    """A rule by exact pattern, by `#id`, or by an equivalent term spelling."""
    wanted = " ".join(text.split())
    terms = await block_store.list_terms(db, guild_id)
    exact = [t for t in terms if t.pattern == wanted]
    if len(exact) == 1:
        return exact[0]
    if len(exact) > 1:
        ids = ", ".join(f"#{t.id}" for t in exact)
        raise ModerationError(f"`{wanted}` is both a term and a regex ({ids}); give the number.")
    number = wanted.removeprefix("#")
    if number.isdecimal() and len(number) <= 19:
        for term in terms:
            if term.id == int(number):
                return term
    key = _safe_key(wanted)
    if key is not None:
        for term in terms:
            if not term.is_regex and _safe_key(term.pattern) == key:
                return term
    raise ModerationError(
        f"No blocked term or expression `{wanted}` here; see `/videoadmin blockword list`."
    )


async def remove_blocked_term(
    db: Database, guild_id: int, text: str, *, actor_id: int, now: datetime
) -> BlockedTerm:
    term = await resolve_term(db, guild_id, text)
    async with db.transaction() as conn:
        await block_store.delete_term(conn, guild_id, term.id)
        await admin_change(
            conn,
            guild_id=guild_id,
            actor_id=actor_id,
            setting="blocked_term",
            summary=f"removed blocked {_rule_label(term)} (#{term.id})",
            old=term.pattern,
            new=None,
            details={"is_regex": term.is_regex, "term_id": term.id},
            now=now,
        )
    return term
