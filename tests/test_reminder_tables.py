"""The frozen migration DDL and the models agree for the reminder and signature tables."""

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

import storage.models  # noqa: F401  (registers the tables)
from storage import migrations
from storage.db import Database

TABLES = ["reminder", "signature_count", "reached_milestone"]


@pytest.fixture
def migrated(tmp_path: Path):
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    migrations.upgrade(db)
    try:
        yield sa.inspect(db.engine)
    finally:
        db.close()


@pytest.mark.parametrize("name", TABLES)
def test_migration_creates_what_the_model_declares(migrated, name: str):
    model = SQLModel.metadata.tables[name]
    columns = {c["name"]: c for c in migrated.get_columns(name)}
    assert set(columns) == {c.name for c in model.columns}
    for column in model.columns:
        assert columns[column.name]["nullable"] == column.nullable, column.name
    indexes = {i["name"] for i in migrated.get_indexes(name)}
    assert indexes == {i.name for i in model.indexes}
    assert migrated.get_pk_constraint(name)["constrained_columns"] == [
        c.name for c in model.primary_key.columns
    ]


def test_upgrading_twice_applies_nothing_the_second_time(tmp_path: Path):
    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        assert 3 in [step.version for step in migrations.upgrade(db)]
        assert migrations.upgrade(db) == []
    finally:
        db.close()
