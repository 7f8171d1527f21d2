"""The persistent Cancel / Again / Delete buttons of a job.

The custom_id carries the action and the job id, so a button works across restarts; pressing
it calls the video cog's handler for that action.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord

if TYPE_CHECKING:
    from cogs.video.cog import VideoCog

# ----- persistent buttons (custom_id carries the job id; they work across restarts) -------


BUTTON_LOOKS = {
    "cancel": ("Cancel", discord.ButtonStyle.secondary),
    "again": ("Again", discord.ButtonStyle.primary),
    "delete": ("Delete", discord.ButtonStyle.danger),
    "extend": ("Extend", discord.ButtonStyle.secondary),
    "retake": ("Retake", discord.ButtonStyle.secondary),
}


class JobButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=r"ltx:(?P<action>cancel|again|delete|extend|retake):(?P<job>\d+)",
):
    """Cancel / Again / Delete / Extend / Retake for one job; the custom_id carries both,
    so it outlives restarts."""

    def __init__(self, action: str, job_id: int) -> None:
        label, style = BUTTON_LOOKS[action]
        super().__init__(
            discord.ui.Button(label=label, style=style, custom_id=f"ltx:{action}:{job_id}")
        )
        self.action = action
        self.job_id = job_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Item[Any], match: re.Match[str], /
    ) -> JobButton:
        return cls(match["action"], int(match["job"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        cog = _cog(interaction)
        press = {
            "cancel": cog.presses.cancel,
            "again": cog.presses.again,
            "delete": cog.presses.delete,
        }
        if self.action in ("extend", "retake"):
            await cog.edits.press_edit(interaction, self.job_id, self.action)
            return
        await press[self.action](interaction, self.job_id)


def _cog(interaction: discord.Interaction) -> VideoCog:
    from cogs.video.cog import VideoCog  # the cog imports this module

    cog = interaction.client.get_cog("VideoCog")  # type: ignore[attr-defined]
    assert isinstance(cog, VideoCog)
    return cog


def cancel_view(job_id: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(JobButton("cancel", job_id))
    return view


def result_view(job_id: int, edits: Sequence[str] = (), *, again: bool = True) -> discord.ui.View:
    """Again (not on an edited clip: use its edit buttons), Delete, and the `edits`
    ("extend", "retake") a configured provider can make of this clip."""
    view = discord.ui.View(timeout=None)
    if again:
        view.add_item(JobButton("again", job_id))
    view.add_item(JobButton("delete", job_id))
    for action in edits:
        view.add_item(JobButton(action, job_id))
    return view
