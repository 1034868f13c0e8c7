"""Platform-free command modules; each public module holds one cog."""
