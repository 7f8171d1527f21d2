"""Discord cogs: thin layers over bot/."""
