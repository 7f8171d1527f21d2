"""The Discord side: thin cogs that parse an interaction, call bot/, and render the answer.

- `video/`   `/video`, its buttons, the live status message and clip delivery
- `account.py` `/quota` and `/jobs`
- `admin/`   `/videoadmin …` (mod-log channel, blocks, blocked words, audit log, allowances)
- `ui/`      shared Discord rendering: member-facing text, mod-log embeds, time markup, checks

Cogs import nothing from `bot.store` (SQL stays behind bot/), and bot/ imports nothing from here.
"""
