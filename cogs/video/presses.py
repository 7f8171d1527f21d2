"""The result and status buttons' presses: Cancel, Again, Delete (Extend / Retake are in
`edits.py`). `JobButton` (buttons.py) routes a press here by its action."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import discord

from bot import moderation
from bot.jobs import JobRecord
from cogs.ui.checks import is_moderator
from cogs.video.common import send_ephemeral

if TYPE_CHECKING:
    from cogs.video.cog import VideoCog


class ResultPresses:
    """Who may press what on a job's message, and what the press does."""

    def __init__(self, cog: VideoCog) -> None:
        self.cog = cog

    async def _job_for_owner_or_moderator(
        self, interaction: discord.Interaction, job_id: int, verb: str
    ) -> tuple[JobRecord, bool] | None:
        """Defer, load the job and check the presser may `verb` it: (job, is_owner) or None
        after telling them why not."""
        await interaction.response.defer(ephemeral=True, thinking=True)
        job = await self.cog.bot.service.job(job_id)
        if job is None:
            await send_ephemeral(interaction, "That job no longer exists.")
            return None
        is_owner = interaction.user.id == job.user_id
        if not is_owner and not is_moderator(interaction):
            await send_ephemeral(
                interaction,
                f"Only the member who asked for this video (or a moderator) can {verb} it.",
            )
            return None
        return job, is_owner

    async def cancel(self, interaction: discord.Interaction, job_id: int) -> None:
        allowed = await self._job_for_owner_or_moderator(interaction, job_id, "cancel")
        if allowed is None:
            return
        job, is_owner = allowed
        reason = "stopped by the member who asked for it" if is_owner else "stopped by a moderator"
        ok = await self.cog.bot.service.cancel(job_id, by=interaction.user.id, reason=reason)
        if ok and not is_owner:
            await self._audit(interaction, job, moderation.KIND_CANCEL, f"job {job_id} {reason}")
        await send_ephemeral(
            interaction,
            f"Job {job_id} cancelled; nothing was charged."
            if ok
            else f"Job {job_id} can't be cancelled any more (it has finished or is being posted).",
        )

    async def again(self, interaction: discord.Interaction, job_id: int) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        problem = self.cog.precheck(interaction, {}, None)
        if problem is not None:
            await send_ephemeral(interaction, problem)
            return
        job = await self.cog.bot.service.job(job_id)
        if job is None:
            await send_ephemeral(interaction, "That job no longer exists.")
            return
        req = job.request
        inputs: dict[str, bytes] = {}
        if req.edit is not None:
            await send_ephemeral(
                interaction, "This clip is an edit: press **Extend** or **Retake** on it instead."
            )
            return
        if req.image is not None or req.first_frame is not None or req.soundtrack is not None:
            if interaction.user.id != job.user_id:
                # Someone else's pictures are theirs: only a text clip can be redone by others.
                await send_ephemeral(
                    interaction,
                    "**Again** reuses the original member's images, so only they can press it "
                    "for this clip. Run `/video` with your own images instead.",
                )
                return
            kept = await asyncio.to_thread(self.cog.bot.service.kept_inputs, job_id)
            if not kept:
                await send_ephemeral(
                    interaction,
                    "The input images of that job are no longer kept, so **Again** can't reuse "
                    "them. Run `/video` again with your images.",
                )
                return
            inputs = kept
        options = {
            "duration": req.duration,
            "resolution": req.resolution,
            "fps": req.fps,
            "audio": req.audio,
            "seed": None,  # a new random one (when the provider takes seeds)
        }
        await self.cog.start_job(
            interaction, req.prompt, req.provider, options, inputs, source=job.source
        )

    async def delete(self, interaction: discord.Interaction, job_id: int) -> None:
        allowed = await self._job_for_owner_or_moderator(interaction, job_id, "delete")
        if allowed is None:
            return
        job, is_owner = allowed
        message = interaction.message
        try:
            if message is not None:
                await message.delete()
        except discord.NotFound:
            pass
        except discord.HTTPException:
            await send_ephemeral(interaction, "I couldn't delete that message; try again.")
            return
        who = "the requester" if is_owner else "a moderator"
        await self._audit(
            interaction,
            job,
            moderation.KIND_DELETE,
            f"video of job {job_id} deleted by {who}",
            message_id=message.id if message else None,
        )
        await send_ephemeral(interaction, f"Deleted the video of job {job_id}.")

    async def _audit(
        self,
        interaction: discord.Interaction,
        job: JobRecord,
        kind: str,
        summary: str,
        **data: Any,
    ) -> None:
        await moderation.audit_job_action(
            self.cog.bot.db, job, kind=kind, summary=summary, actor_id=interaction.user.id, **data
        )
