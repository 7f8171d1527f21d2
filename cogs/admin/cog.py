"""`/videoadmin …`: mod-log channel, blocked members and terms, the audit log, retention.

The group carries `default_member_permissions = Manage Server` (which only hides it; server
admins can change who sees it) and every callback checks Manage Server again at run time.
Every answer is ephemeral; every change is audited (who, old → new) in the same transaction
as the change and then posted to the mod-log channel. The allowance subgroup lives in
`cogs/admin/allowance.py`, the provider subgroup in `cogs/admin/providers.py`, the usage
subgroup in `cogs/admin/usage.py`, the queue in `cogs/admin/queue.py`, the animate and
safety commands in `cogs/admin/animate.py` and `cogs/admin/safety.py`; all are attached here.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot import moderation
from bot.db import utcnow
from bot.moderation import AuditEntry, BlockedMember, BlockedTerm, ModerationError
from cogs.admin.allowance import allowance_group
from cogs.admin.animate import animate_setting
from cogs.admin.providers import provider_group
from cogs.admin.queue import QueueRefresh, queue_command
from cogs.admin.safety import safety_command
from cogs.admin.usage import usage_group
from cogs.ui.checks import has_manage_guild, require_manage_guild
from cogs.ui.modlog import inert, make_poster
from cogs.ui.pages import Pager, paginate

if TYPE_CHECKING:
    from bot.client import VideoBot

log = logging.getLogger(__name__)

NONE = discord.AllowedMentions.none()
NEEDED_LOG_PERMISSIONS = (
    ("view_channel", "View Channel"),
    ("send_messages", "Send Messages"),
    ("embed_links", "Embed Links"),
)
KIND_ICONS = {
    "generation": "🎬",
    "refusal": "⛔",
    "admin": "🛠️",
    "delete": "🗑️",
    "cancel": "✖️",
    "prune": "🧹",
    "submission_unknown": "❓",
    "provider_account": "💳",
    "safety": "🛡️",
}


# ----- pure rendering helpers (tested without Discord) -----------------------------------


def ts(moment: datetime, style: str = "f") -> str:
    return f"<t:{int(moment.timestamp())}:{style}>"


def entry_line(entry: AuditEntry) -> str:
    icon = KIND_ICONS.get(entry.kind, "📝")
    line = f"`#{entry.id}` {ts(entry.at)} {icon} **{entry.kind}** — {inert(entry.summary, 220)}"
    extras = []
    if entry.actor_id is not None and entry.actor_id != entry.target_id:
        extras.append(f"by <@{entry.actor_id}>")
    if entry.target_id is not None:
        extras.append(f"member <@{entry.target_id}>")
    if entry.job_id is not None:
        extras.append(f"job {entry.job_id}")
    return line + (" · " + " · ".join(extras) if extras else "")


def term_line(term: BlockedTerm) -> str:
    kind = "regex" if term.is_regex else "term"
    shown = term.pattern.replace("`", "ˋ")
    return f"`#{term.id}` {kind} `{shown}` · by <@{term.added_by}> {ts(term.created_at, 'd')}"


def block_line(block: BlockedMember) -> str:
    until = "until unblocked" if block.expires_at is None else f"until {ts(block.expires_at)}"
    line = f"<@{block.user_id}> {until} · by <@{block.blocked_by}>"
    if block.reason:
        line += f" · {inert(block.reason, 200)}"
    return line


# ----- the cog ---------------------------------------------------------------------------


class AdminCog(commands.Cog):
    videoadmin = app_commands.Group(
        name="videoadmin",
        description="Moderation and settings for /video",
        default_permissions=discord.Permissions(manage_guild=True),
        guild_only=True,
    )
    blockword = app_commands.Group(
        name="blockword", description="Blocked words and expressions in prompts", parent=videoadmin
    )
    log_group = app_commands.Group(
        name="log", description="The moderation (audit) log", parent=videoadmin
    )

    def __init__(self, bot: VideoBot | commands.Bot) -> None:
        self.bot: Any = bot
        # The instance's copy of the group (discord.py copies class-level groups per cog).
        for group in (allowance_group, provider_group, usage_group):
            self.videoadmin.add_command(group)
        self.videoadmin.add_command(animate_setting)
        self.videoadmin.add_command(safety_command)
        self.videoadmin.add_command(queue_command)

    async def cog_load(self) -> None:
        self.bot.modlog.poster = make_poster(self.bot, self.bot.modlog.attachment)
        self.bot.add_dynamic_items(QueueRefresh)

    async def cog_unload(self) -> None:
        self.bot.modlog.poster = None
        self.bot.remove_dynamic_items(QueueRefresh)

    # ----- helpers ----------------------------------------------------------------------

    async def _begin(self, interaction: discord.Interaction) -> discord.Guild | None:
        """Acknowledge at once, then check Manage Server; the guild, or None if refused."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        if not await require_manage_guild(interaction):
            return None
        guild = interaction.guild
        if guild is None:  # guild_only: only when the guild is not cached
            await self._reply(interaction, "Use this command inside the server.")
            return None
        return guild

    @staticmethod
    async def _reply(interaction: discord.Interaction, text: str, **kwargs: Any) -> Any:
        return await interaction.followup.send(
            text[:2000], ephemeral=True, allowed_mentions=NONE, **kwargs
        )

    async def _pages(
        self, interaction: discord.Interaction, pages: Sequence[discord.Embed]
    ) -> None:
        if len(pages) == 1:
            await interaction.followup.send(embed=pages[0], ephemeral=True, allowed_mentions=NONE)
            return
        view = Pager(pages, owner_id=interaction.user.id)
        view.message = await interaction.followup.send(
            embed=pages[0], view=view, ephemeral=True, allowed_mentions=NONE, wait=True
        )

    # ----- logchannel -------------------------------------------------------------------

    @videoadmin.command(name="logchannel", description="Set the channel that logs /video activity")
    @app_commands.describe(channel="Where to post the log (leave empty to turn it off)")
    async def logchannel(
        self, interaction: discord.Interaction, channel: discord.TextChannel | None = None
    ) -> None:
        guild = await self._begin(interaction)
        if guild is None:
            return
        if channel is not None:
            me = guild.me
            if me is None:
                me = await guild.fetch_member(self.bot.user.id)
            perms = channel.permissions_for(me)
            missing = [label for attr, label in NEEDED_LOG_PERMISSIONS if not getattr(perms, attr)]
            if missing:
                await self._reply(
                    interaction,
                    f"I can't post in {channel.mention}: I'm missing **{', '.join(missing)}** "
                    "there. Give me those permissions in the channel's settings and run this "
                    "again.",
                )
                return
        change = await moderation.set_log_channel(
            self.bot.db,
            guild.id,
            channel.id if channel else None,
            actor_id=interaction.user.id,
            now=utcnow(),
        )
        if channel is None:
            text = "The mod-log channel is off; entries are still kept in the audit log."
        else:
            text = (
                f"Mod-log channel set to {channel.mention}: every finished video, refusal and "
                "admin change will be posted there."
            )
        if change.old is not None and change.old != change.new:
            text += f" (was <#{change.old}>)"
        await self._reply(interaction, text)

    # ----- members ----------------------------------------------------------------------

    @videoadmin.command(name="block", description="Stop a member from using /video")
    @app_commands.describe(
        member="Who to block",
        reason="Why (kept in the audit log, never shown to the member)",
        duration="How long, e.g. 30m, 2h, 3d, 1w (empty: until unblocked)",
    )
    async def block(
        self,
        interaction: discord.Interaction,
        member: discord.Member | discord.User,
        reason: app_commands.Range[str, 1, moderation.MAX_REASON_CHARS] | None = None,
        duration: app_commands.Range[str, 1, 32] | None = None,
    ) -> None:
        guild = await self._begin(interaction)
        if guild is None:
            return
        if member.bot:
            await self._reply(interaction, "Bots can't use /video anyway.")
            return
        try:
            length = moderation.parse_duration(duration)
            change = await moderation.block_member(
                self.bot.db,
                guild.id,
                member.id,
                actor_id=interaction.user.id,
                reason=reason,
                duration=length,
                now=utcnow(),
            )
        except ModerationError as exc:
            await self._reply(interaction, exc.message)
            return
        block = await moderation.active_block(self.bot.db, guild.id, member.id, utcnow())
        if block is not None and block.expires_at is not None:
            until = f"until {ts(block.expires_at)} ({ts(block.expires_at, 'R')})"
        else:
            until = "until you unblock them"
        text = f"{member.mention} can't use /video {until}."
        if reason:
            text += f" Reason (not shown to them): {inert(reason, 300)}"
        if change.old != "not blocked":
            text += f" (Replaces: {change.old}.)"
        await self._reply(interaction, text)

    @videoadmin.command(name="unblock", description="Let a blocked member use /video again")
    @app_commands.describe(member="Who to unblock")
    async def unblock(
        self, interaction: discord.Interaction, member: discord.Member | discord.User
    ) -> None:
        guild = await self._begin(interaction)
        if guild is None:
            return
        change = await moderation.unblock_member(
            self.bot.db, guild.id, member.id, actor_id=interaction.user.id, now=utcnow()
        )
        if change is None:
            await self._reply(interaction, f"{member.mention} isn't blocked.")
            return
        await self._reply(interaction, f"{member.mention} can use /video again.")

    @videoadmin.command(name="blocked", description="List the members blocked from /video")
    async def blocked(self, interaction: discord.Interaction) -> None:
        guild = await self._begin(interaction)
        if guild is None:
            return
        blocks = await moderation.list_blocked_members(self.bot.db, guild.id, utcnow())
        pages = paginate(
            [block_line(b) for b in blocks],
            title="Members blocked from /video",
            empty="Nobody is blocked.",
        )
        await self._pages(interaction, pages)

    # ----- blocked terms ----------------------------------------------------------------

    @blockword.command(name="add", description="Block prompts containing a word or expression")
    @app_commands.describe(
        term="A word or phrase (whole words; spelling tricks are caught), or a regex",
        regex="Treat the term as a regular expression (searched anywhere in the prompt)",
    )
    async def blockword_add(
        self,
        interaction: discord.Interaction,
        term: app_commands.Range[str, 1, 200],
        regex: bool = False,
    ) -> None:
        guild = await self._begin(interaction)
        if guild is None:
            return
        try:
            added = await moderation.add_blocked_term(
                self.bot.db,
                guild.id,
                term,
                is_regex=regex,
                actor_id=interaction.user.id,
                now=utcnow(),
            )
        except ModerationError as exc:
            await self._reply(interaction, exc.message)
            return
        shown = added.pattern.replace("`", "ˋ")
        if regex:
            text = (
                f"Blocked expression `{shown}` (#{added.id}). It is searched anywhere in the "
                "prompt, case-insensitively, after accents, lookalike letters and leetspeak "
                "are folded."
            )
        else:
            text = (
                f"Blocked term `{shown}` (#{added.id}). It matches whole words (plurals and "
                "stretched letters too) and catches accents, lookalike letters, leetspeak and "
                "spaced-out spellings like `n-s-f-w`."
            )
        await self._reply(interaction, text)

    @blockword.command(name="remove", description="Unblock a word or expression")
    @app_commands.describe(term="The term or expression (or its #number from the list)")
    async def blockword_remove(
        self, interaction: discord.Interaction, term: app_commands.Range[str, 1, 200]
    ) -> None:
        guild = await self._begin(interaction)
        if guild is None:
            return
        try:
            removed = await moderation.remove_blocked_term(
                self.bot.db, guild.id, term, actor_id=interaction.user.id, now=utcnow()
            )
        except ModerationError as exc:
            await self._reply(interaction, exc.message)
            return
        kind = "expression" if removed.is_regex else "term"
        shown = removed.pattern.replace("`", "ˋ")
        await self._reply(interaction, f"Removed blocked {kind} `{shown}` (#{removed.id}).")

    @blockword_remove.autocomplete("term")
    async def _term_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        if not has_manage_guild(interaction) or interaction.guild_id is None:
            return []
        terms = await moderation.list_blocked_terms(self.bot.db, interaction.guild_id)
        wanted = current.strip().lower()
        choices = []
        for term in terms:
            if wanted and wanted not in term.pattern.lower() and wanted != f"#{term.id}":
                continue
            kind = "regex" if term.is_regex else "term"
            name = f"#{term.id} {kind}: {term.pattern}"
            choices.append(app_commands.Choice(name=name[:100], value=f"#{term.id}"))
            if len(choices) == 25:
                break
        return choices

    @blockword.command(name="list", description="List the blocked words and expressions")
    async def blockword_list(self, interaction: discord.Interaction) -> None:
        guild = await self._begin(interaction)
        if guild is None:
            return
        terms = await moderation.list_blocked_terms(self.bot.db, guild.id)
        pages = paginate(
            [term_line(t) for t in terms],
            title="Blocked terms",
            empty="No blocked terms. Add one with `/videoadmin blockword add`.",
            footer=f"{len(terms)} rule(s)",
        )
        await self._pages(interaction, pages)

    @blockword.command(name="test", description="Check a prompt against the blocked terms")
    @app_commands.describe(prompt="The prompt to check (nothing is generated or logged)")
    async def blockword_test(
        self, interaction: discord.Interaction, prompt: app_commands.Range[str, 1, 5000]
    ) -> None:
        guild = await self._begin(interaction)
        if guild is None:
            return
        verdict = await moderation.find_blocked_term(self.bot.db, guild.id, prompt)
        if verdict is None:
            await self._reply(interaction, "That prompt passes the blocked terms.")
            return
        if verdict.term_id is None:
            await self._reply(interaction, f"That prompt would be refused: {verdict.message}")
            return
        kind = "expression" if verdict.is_regex else "term"
        excerpt = (verdict.excerpt or "").replace("`", "ˋ")
        await self._reply(
            interaction,
            f"That prompt would be refused by blocked {kind} #{verdict.term_id}"
            + (f", matching `{excerpt}`." if excerpt else "."),
        )

    # ----- the audit log ----------------------------------------------------------------

    @log_group.command(name="show", description="Recent moderation log entries")
    @app_commands.describe(
        member="Only entries about (or by) this member", limit="How many entries (default 50)"
    )
    async def log_show(
        self,
        interaction: discord.Interaction,
        member: discord.Member | discord.User | None = None,
        limit: app_commands.Range[int, 1, 500] = 50,
    ) -> None:
        guild = await self._begin(interaction)
        if guild is None:
            return
        entries = await moderation.recent_entries(
            self.bot.db, guild.id, limit=limit, member_id=member.id if member else None
        )
        title = "Moderation log" + (f" · {member.display_name}" if member else "")
        pages = paginate(
            [entry_line(e) for e in entries],
            title=clip_title(title),
            empty="No entries" + (" for that member." if member else " yet."),
            footer="newest first",
        )
        await self._pages(interaction, pages)

    @log_group.command(name="export", description="Download the log as CSV for a date range")
    @app_commands.describe(
        since="First day, YYYY-MM-DD (UTC; default: as far back as kept)",
        until="Last day, YYYY-MM-DD (UTC; default: today)",
    )
    async def log_export(
        self,
        interaction: discord.Interaction,
        since: app_commands.Range[str, 1, 10] | None = None,
        until: app_commands.Range[str, 1, 10] | None = None,
    ) -> None:
        guild = await self._begin(interaction)
        if guild is None:
            return
        now = utcnow()
        keep_days = await moderation.retention_days(self.bot.db, guild.id)
        try:
            start, end = moderation.export_range(
                since,
                until,
                today=now.astimezone(UTC).date(),
                retention_days=keep_days,
            )
            data, rows = await moderation.export_csv(
                self.bot.db, guild.id, start, end, max_bytes=guild.filesize_limit
            )
        except ModerationError as exc:
            await self._reply(interaction, exc.message)
            return
        first, last_day = start.date().isoformat(), (end - timedelta(days=1)).date().isoformat()
        await moderation.record_export(
            self.bot.db,
            guild.id,
            actor_id=interaction.user.id,
            rows=rows,
            first=first,
            last=last_day,
            now=now,
        )
        file = discord.File(io.BytesIO(data), filename=f"audit-{guild.id}-{first}-{last_day}.csv")
        await self._reply(
            interaction,
            f"{rows} log entries from {first} to {last_day} (UTC). Cells that a spreadsheet "
            "would run as a formula start with an apostrophe.",
            file=file,
        )

    # ----- retention --------------------------------------------------------------------

    @videoadmin.command(name="retention", description="How many days the moderation log is kept")
    @app_commands.describe(days="Days to keep log entries (default 90)")
    async def retention(
        self,
        interaction: discord.Interaction,
        days: app_commands.Range[int, moderation.MIN_RETENTION_DAYS, moderation.MAX_RETENTION_DAYS],
    ) -> None:
        guild = await self._begin(interaction)
        if guild is None:
            return
        try:
            change, removed = await moderation.set_retention(
                self.bot.db, guild.id, days, actor_id=interaction.user.id, now=utcnow()
            )
        except ModerationError as exc:
            await self._reply(interaction, exc.message)
            return
        text = f"Log entries are now kept for {days} days (was {change.old})."
        if removed:
            text += f" Removed {removed} older entries (the removal itself is logged)."
        await self._reply(interaction, text)


def clip_title(text: str) -> str:
    return text if len(text) <= 256 else text[:255] + "…"
