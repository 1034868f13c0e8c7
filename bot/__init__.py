"""volunteer-bot: coordinates campaign volunteers on Discord, Matrix and the console."""

__version__ = "0.1.0"
