"""The offer of another provider when the asked one is failing (no guild fallback order).

The deferred ephemeral answer of `/video` becomes the offer (`cogs.ui.failover.offer_text`:
why, the alternative's settings and price) with **Use <provider>** and **Cancel**. Nothing
is reserved until the member accepts: Accept admits the prepared request through the same
path as any `/video` (quota checked then; the summary says which provider makes it), Cancel
or the timeout removes the downloaded inputs and says nothing was charged. The view lives in
memory only: after a restart the buttons answer nothing, the inputs are swept at start.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

import discord

from bot.jobs import SourceMessage
from bot.jobs.failover import Plan
from bot.jobs.service import Requester
from cogs.ui.failover import failing_words, offer_text
from cogs.video.common import NO_MENTIONS, send_ephemeral

if TYPE_CHECKING:
    from cogs.video.cog import VideoCog

log = logging.getLogger(__name__)

OFFER_TIMEOUT = 120.0  # seconds; well inside the interaction token's 15 minutes


class OfferView(discord.ui.View):
    """Accept / Cancel for one prepared request; the first decision wins."""

    def __init__(
        self,
        cog: VideoCog,
        interaction: discord.Interaction,
        who: Requester,
        plan: Plan,
        input_dir: Path | None,
        started: float,
        *,
        timeout: float,
        source: SourceMessage | None = None,
    ) -> None:
        super().__init__(timeout=timeout)
        self.cog = cog
        self.command = interaction  # the /video interaction: its answer is the offer
        self.who = who
        self.plan = plan
        self.input_dir = input_dir
        self.started = started
        self.source = source
        self.decided = False
        nonce = secrets.token_hex(8)
        provider = plan.request.provider
        accept: discord.ui.Button[OfferView] = discord.ui.Button(
            label=f"Use {provider}"[:80],
            style=discord.ButtonStyle.primary,
            custom_id=f"ltx-offer:accept:{nonce}",
        )
        cancel: discord.ui.Button[OfferView] = discord.ui.Button(
            label="Cancel",
            style=discord.ButtonStyle.secondary,
            custom_id=f"ltx-offer:cancel:{nonce}",
        )
        accept.callback = self._accept  # type: ignore[method-assign]
        cancel.callback = self._cancel  # type: ignore[method-assign]
        self.add_item(accept)
        self.add_item(cancel)

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.who.user_id:
            return True
        await send_ephemeral(interaction, "Only the member who asked for this video can answer.")
        return False

    def _decide(self) -> bool:
        """True for the first decision only (a second press, or the timeout, loses)."""
        if self.decided:
            return False
        self.decided = True
        self.stop()
        return True

    async def _accept(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()  # an update of the offer message, no new message
        if not self._decide():
            return
        provider = self.plan.request.provider
        verdict = self.cog.bot.service.provider_verdict(provider)
        if verdict.failing:  # it started failing while the member read the offer
            self.cog.bot.service.discard_inputs(self.input_dir)
            await self._close(
                f"⚠️ {failing_words(provider, verdict)} now too. Nothing was charged; "
                "try again later."
            )
            return
        await self.cog.admit_and_show(
            self.command, self.who, self.plan, self.input_dir, self.started, self.source
        )

    async def _cancel(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        if not self._decide():
            return
        self.cog.bot.service.discard_inputs(self.input_dir)
        await self._close("Cancelled; nothing was reserved or charged.")

    async def on_timeout(self) -> None:
        if not self._decide():
            return
        self.cog.bot.service.discard_inputs(self.input_dir)
        await self._close(
            "The offer timed out; nothing was reserved or charged. Run `/video` again."
        )

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any]
    ) -> None:
        # (admit_and_show answers its own errors; the inputs may belong to an admitted job
        # by now, so they are left to the tracker or the start-up sweep)
        log.exception("offer of %s failed", self.plan.request.provider, exc_info=error)

    async def _close(self, text: str) -> None:
        try:
            await self.command.edit_original_response(
                content=text, view=None, allowed_mentions=NO_MENTIONS
            )
        except discord.HTTPException:
            log.warning("could not close the provider offer of %s", self.command.id)


async def offer_alternative(
    cog: VideoCog,
    interaction: discord.Interaction,
    who: Requester,
    plan: Plan,
    input_dir: Path | None,
    started: float,
    source: SourceMessage | None = None,
) -> None:
    """Show the offer in the deferred answer; nothing is reserved until Accept."""
    view = OfferView(
        cog, interaction, who, plan, input_dir, started, timeout=cog.offer_timeout, source=source
    )
    try:
        await interaction.edit_original_response(
            content=offer_text(plan), view=view, allowed_mentions=NO_MENTIONS
        )
    except discord.HTTPException:
        log.warning("could not show the provider offer of interaction %s", interaction.id)
        view.stop()
        cog.bot.service.discard_inputs(input_dir)
