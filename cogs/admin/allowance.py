"""`/videoadmin allowance …`: show and change the guild's allowance rules.

`allowance_group` is attached under `/videoadmin` by the admin cog (it is not registered on
its own); `/videoadmin` carries `default_member_permissions=manage_guild` and every callback
here checks Manage Server again at run time. Every change is audited (bot.quota).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import discord
from discord import app_commands

from bot import limits, quota
from bot.db import utcnow
from bot.moderation import Change
from bot.quota import AllowanceInputError, AllowanceOverview
from cogs.ui.checks import require_manage_guild

NONE = discord.AllowedMentions.none()
FIELD_LIMIT = 1024

allowance_group = app_commands.Group(
    name="allowance",
    description="Video allowances: defaults, roles, members, limits, budget",
    guild_only=True,
)

# Option ranges: the bounds in bot.limits, shared with the env settings and bot.quota.
Seconds = app_commands.Range[int, limits.ALLOWANCE_SECONDS.low, limits.ALLOWANCE_SECONDS.high]
WindowHours = app_commands.Range[int, limits.WINDOW_HOURS.low, limits.WINDOW_HOURS.high]
Jobs = app_commands.Range[int, limits.JOBS_PER_MEMBER.low, limits.JOBS_PER_MEMBER.high]
Cooldown = app_commands.Range[int, limits.COOLDOWN_SECONDS.low, limits.COOLDOWN_SECONDS.high]
Usd = app_commands.Range[float, limits.MONTHLY_BUDGET_USD.low, limits.MONTHLY_BUDGET_USD.high]
Weight = app_commands.Range[float, limits.HD_WEIGHT.low, limits.HD_WEIGHT.high]


def seconds_or_unlimited(seconds: int | None, unlimited: bool) -> int | None:
    """The option pair `seconds` / `unlimited` as one value (None: unlimited)."""
    if unlimited and seconds is not None:
        raise AllowanceInputError("Give either `seconds` or `unlimited: True`, not both.")
    if not unlimited and seconds is None:
        raise AllowanceInputError("Give `seconds` (0 = no allowance) or set `unlimited: True`.")
    return None if unlimited else seconds


def _lines_field(lines: Sequence[str], empty: str) -> str:
    if not lines:
        return empty
    text = ""
    for i, line in enumerate(lines):
        more = f"\n… and {len(lines) - i} more"
        if len(text) + len(line) + 1 + len(more) > FIELD_LIMIT:
            return text + more
        text += ("\n" if text else "") + line
    return text


def overview_embed(view: AllowanceOverview) -> discord.Embed:
    """The `show` answer (pure)."""
    s = view.settings
    default = quota.fmt_allowance(s.allowance_seconds(view.default_seconds), s.quota_window_seconds)
    source = "set for this server" if s.quota_seconds is not None else "bot default"
    embed = discord.Embed(title="Video allowances")
    embed.add_field(name="Server default", value=f"{default} ({source})", inline=False)
    embed.add_field(name="HD weight", value=f"{s.hd_weight:g}× above 1280×720")
    if s.max_concurrent_jobs is not None:
        cap = str(s.max_concurrent_jobs)
    elif view.default_max_concurrent is not None:
        cap = f"{view.default_max_concurrent} (bot default)"
    else:
        cap = "no cap"
    embed.add_field(name="Concurrent jobs per member", value=cap)
    embed.add_field(
        name="Cooldown",
        value="none" if not s.cooldown_seconds else quota.fmt_seconds(s.cooldown_seconds),
    )
    spent = f"${view.spent_this_month_usd:,.2f} spent this month"
    budget = (
        f"none ({spent})"
        if s.monthly_budget_usd is None
        else f"${s.monthly_budget_usd:,.2f} ({spent})"
    )
    embed.add_field(name="Monthly budget", value=budget, inline=False)
    embed.add_field(
        name="Billed above quotes",
        value=f"${view.over_quote_this_month_usd:,.2f} this month "
        "(not charged: a clip never costs more than its quote)",
        inline=False,
    )
    embed.add_field(
        name="Roles (most generous applies)",
        value=_lines_field(
            [f"<@&{r.role_id}>: {quota.fmt_allowance(r.seconds)}" for r in view.roles], "none"
        ),
        inline=False,
    )
    embed.add_field(
        name="Member overrides",
        value=_lines_field(
            [f"<@{m.user_id}>: {quota.fmt_allowance(m.seconds)}" for m in view.members], "none"
        ),
        inline=False,
    )
    embed.set_footer(
        text="A member's allowance: their override, else their most generous role, "
        "else the server default."
    )
    return embed


async def _run(
    interaction: discord.Interaction,
    action: Callable[[Any, int], Awaitable[Change | str | discord.Embed]],
) -> None:
    """Defer, check Manage Server, run `action(bot, guild_id)`, answer ephemerally."""
    await interaction.response.defer(ephemeral=True, thinking=True)
    if not await require_manage_guild(interaction):
        return
    assert interaction.guild_id is not None
    try:
        result = await action(interaction.client, interaction.guild_id)
    except AllowanceInputError as exc:
        result = exc.message
    if isinstance(result, discord.Embed):
        await interaction.followup.send(embed=result, ephemeral=True, allowed_mentions=NONE)
        return
    if isinstance(result, Change):
        result = f"Done — {result.summary}."
    await interaction.followup.send(result, ephemeral=True, allowed_mentions=NONE)


@allowance_group.command(name="show", description="Show the allowance rules of this server")
async def show(interaction: discord.Interaction) -> None:
    async def action(bot: Any, guild_id: int) -> discord.Embed:
        view = await quota.overview(
            bot.db,
            guild_id=guild_id,
            default_seconds=bot.settings.quota_seconds_per_day,
            default_max_concurrent=bot.settings.max_active_jobs_per_member,
            now=utcnow(),
        )
        return overview_embed(view)

    await _run(interaction, action)


@allowance_group.command(name="default", description="Set the server's default allowance")
@app_commands.describe(
    seconds="Seconds of video per member per window (0 = none unless a role or override allows)",
    window_hours="Length of the rolling window in hours (default 24)",
)
async def default(
    interaction: discord.Interaction,
    seconds: Seconds,
    window_hours: WindowHours | None = None,
) -> None:
    async def action(bot: Any, guild_id: int) -> Change:
        return await quota.set_default(
            bot.db,
            guild_id=guild_id,
            actor_id=interaction.user.id,
            seconds=seconds,
            window_hours=window_hours,
            now=utcnow(),
            default_seconds=bot.settings.quota_seconds_per_day,
        )

    await _run(interaction, action)


@allowance_group.command(name="role", description="Give a role an allowance")
@app_commands.describe(
    role="The role",
    seconds="Seconds of video per window (0 = none)",
    unlimited="True: no limit for this role (leave seconds empty)",
)
async def role(
    interaction: discord.Interaction,
    role: discord.Role,
    seconds: Seconds | None = None,
    unlimited: bool = False,
) -> None:
    async def action(bot: Any, guild_id: int) -> Change:
        value = seconds_or_unlimited(seconds, unlimited)
        return await quota.set_role(
            bot.db,
            guild_id=guild_id,
            actor_id=interaction.user.id,
            role_id=role.id,
            seconds=value,
            now=utcnow(),
        )

    await _run(interaction, action)


@allowance_group.command(name="member", description="Override one member's allowance")
@app_commands.describe(
    member="The member",
    seconds="Seconds of video per window (0 = none at all)",
    unlimited="True: no limit for this member (leave seconds empty)",
)
async def member(
    interaction: discord.Interaction,
    member: discord.Member | discord.User,
    seconds: Seconds | None = None,
    unlimited: bool = False,
) -> None:
    async def action(bot: Any, guild_id: int) -> Change:
        value = seconds_or_unlimited(seconds, unlimited)
        return await quota.set_member(
            bot.db,
            guild_id=guild_id,
            actor_id=interaction.user.id,
            user_id=member.id,
            seconds=value,
            now=utcnow(),
        )

    await _run(interaction, action)


@allowance_group.command(name="clear-member", description="Remove a member's override")
@app_commands.describe(member="The member")
async def clear_member(
    interaction: discord.Interaction, member: discord.Member | discord.User
) -> None:
    async def action(bot: Any, guild_id: int) -> Change | str:
        change = await quota.clear_member(
            bot.db, guild_id=guild_id, actor_id=interaction.user.id, user_id=member.id, now=utcnow()
        )
        return change or f"{member.mention} has no override; nothing changed."

    await _run(interaction, action)


@allowance_group.command(name="clear-role", description="Remove a role's allowance")
@app_commands.describe(role="The role")
async def clear_role(interaction: discord.Interaction, role: discord.Role) -> None:
    async def action(bot: Any, guild_id: int) -> Change | str:
        change = await quota.clear_role(
            bot.db, guild_id=guild_id, actor_id=interaction.user.id, role_id=role.id, now=utcnow()
        )
        return change or f"{role.mention} has no allowance; nothing changed."

    await _run(interaction, action)


@allowance_group.command(name="concurrency", description="Cap unfinished jobs per member")
@app_commands.describe(jobs="Most unfinished jobs a member may have (empty: bot default)")
async def concurrency(interaction: discord.Interaction, jobs: Jobs | None = None) -> None:
    async def action(bot: Any, guild_id: int) -> Change:
        return await quota.set_concurrency(
            bot.db,
            guild_id=guild_id,
            actor_id=interaction.user.id,
            jobs=jobs,
            now=utcnow(),
            default_max_concurrent=bot.settings.max_active_jobs_per_member,
        )

    await _run(interaction, action)


@allowance_group.command(name="cooldown", description="Minimum time between a member's clips")
@app_commands.describe(seconds="Seconds between two clips of one member (0 = none)")
async def cooldown(interaction: discord.Interaction, seconds: Cooldown) -> None:
    async def action(bot: Any, guild_id: int) -> Change:
        return await quota.set_cooldown(
            bot.db, guild_id=guild_id, actor_id=interaction.user.id, seconds=seconds, now=utcnow()
        )

    await _run(interaction, action)


@allowance_group.command(name="budget", description="Monthly spending cap for the whole server")
@app_commands.describe(usd="US dollars per calendar month (UTC); 0 or empty = no cap")
async def budget(
    interaction: discord.Interaction,
    usd: Usd | None = None,
) -> None:
    async def action(bot: Any, guild_id: int) -> Change:
        return await quota.set_budget(
            bot.db, guild_id=guild_id, actor_id=interaction.user.id, usd=usd, now=utcnow()
        )

    await _run(interaction, action)


@allowance_group.command(name="hd-weight", description="How much an HD second counts")
@app_commands.describe(weight="Allowance seconds per second of video above 1280×720 (1–10)")
async def hd_weight(interaction: discord.Interaction, weight: Weight) -> None:
    async def action(bot: Any, guild_id: int) -> Change:
        return await quota.set_hd_weight(
            bot.db, guild_id=guild_id, actor_id=interaction.user.id, weight=weight, now=utcnow()
        )

    await _run(interaction, action)


@allowance_group.command(name="reset", description="Give a member their full allowance back")
@app_commands.describe(member="The member whose usage in the current window is forgiven")
async def reset(interaction: discord.Interaction, member: discord.Member | discord.User) -> None:
    async def action(bot: Any, guild_id: int) -> Change:
        return await quota.reset(
            bot.db, guild_id=guild_id, actor_id=interaction.user.id, user_id=member.id, now=utcnow()
        )

    await _run(interaction, action)
