"""Paged embeds: a long list split into embeds, and Prev/Next buttons to turn them."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import discord

PAGE_LINES = 10
PAGE_CHARS = 3800
PAGER_TIMEOUT_S = 600.0


def paginate(
    lines: Sequence[str], *, title: str, empty: str, footer: str = ""
) -> list[discord.Embed]:
    """Embeds of at most PAGE_LINES lines (and PAGE_CHARS characters) each."""
    chunks: list[list[str]] = []
    for line in lines:
        if (
            not chunks
            or len(chunks[-1]) >= PAGE_LINES
            or sum(len(x) + 1 for x in chunks[-1]) + len(line) > PAGE_CHARS
        ):
            chunks.append([])
        chunks[-1].append(line[:PAGE_CHARS])
    if not chunks:
        return [discord.Embed(title=title, description=empty)]
    pages = []
    for number, chunk in enumerate(chunks, start=1):
        embed = discord.Embed(title=title, description="\n".join(chunk))
        page_text = f"Page {number}/{len(chunks)}"
        embed.set_footer(text=f"{page_text} · {footer}" if footer else page_text)
        pages.append(embed)
    return pages


class Pager(discord.ui.View):
    """Prev/Next buttons over a list of embeds; only the member who asked can turn pages."""

    def __init__(
        self, pages: Sequence[discord.Embed], *, owner_id: int, timeout: float = PAGER_TIMEOUT_S
    ) -> None:
        super().__init__(timeout=timeout)
        self.pages = list(pages)
        self.index = 0
        self.owner_id = owner_id
        self.message: discord.WebhookMessage | None = None
        self._sync()

    def _sync(self) -> None:
        self.prev_page.disabled = self.index <= 0
        self.next_page.disabled = self.index >= len(self.pages) - 1

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await interaction.response.send_message(
            "Only the admin who opened this log can turn its pages.", ephemeral=True
        )
        return False

    async def _show(self, interaction: discord.Interaction, step: int) -> None:
        self.index = max(0, min(len(self.pages) - 1, self.index + step))
        self._sync()
        await interaction.response.edit_message(embed=self.pages[self.index], view=self)

    @discord.ui.button(label="Prev", style=discord.ButtonStyle.secondary)
    async def prev_page(
        self, interaction: discord.Interaction, _button: discord.ui.Button[Pager]
    ) -> None:
        await self._show(interaction, -1)

    @discord.ui.button(label="Next", style=discord.ButtonStyle.secondary)
    async def next_page(
        self, interaction: discord.Interaction, _button: discord.ui.Button[Pager]
    ) -> None:
        await self._show(interaction, 1)

    async def on_timeout(self) -> None:
        if self.message is not None:
            with contextlib.suppress(discord.HTTPException):
                await self.message.edit(view=None)
