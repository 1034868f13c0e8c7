"""Persistence: SQLModel tables, the database, migrations and repositories."""
