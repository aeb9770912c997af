"""Orchestra on Discord (discord.py 2.x): the adapter that translates between Discord and the engine."""
