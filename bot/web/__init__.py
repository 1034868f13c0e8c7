"""The optional web server: public progress, the coordinators' dashboard, health and metrics.

Importing this package loads nothing heavy; :mod:`bot.web.server` holds the aiohttp parts.
"""
