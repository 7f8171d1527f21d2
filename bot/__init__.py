"""ltx-discord-bot: generate LTX-2.3 clips from Discord."""
