"""Command declarations: validated at import against what every platform accepts."""

from typing import Annotated, Any

import pytest

from bot.commands import Cog, SpecError, command, requires
from bot.context import Ctx
from bot.domain import UserRef
from bot.params import Param


def _cog(method: Any, *, group: str = "demo") -> type[Cog]:
    return type("Demo", (Cog,), {"__doc__": "Demo.", "group": group, "personal_data": False,
                                 "run": method})  # fmt: skip


async def _ok(self, ctx: Ctx, id: Annotated[int, Param("Task number", min=1)]) -> str:
    """Do it."""
    return "ok"


def test_a_valid_command_builds_a_spec_with_typed_arguments():
    spec = _cog(command("run")(_ok)).specs[0]
    assert spec.qualified_name == "demo run"
    assert spec.args[0].name == "id" and spec.args[0].kind.wire == "integer"
    assert spec.args[0].param.min == 1 and spec.args[0].required


def test_upper_case_command_names_are_refused():
    with pytest.raises(SpecError, match="must match"):
        _cog(command("Run")(_ok))


def test_group_names_longer_than_32_characters_are_refused():
    with pytest.raises(SpecError, match="must match"):
        _cog(command("run")(_ok), group="g" * 33)


def test_a_command_without_docstring_is_refused():
    async def bare(self, ctx: Ctx) -> str:
        return "ok"

    with pytest.raises(SpecError, match="description must be"):
        _cog(command("run")(bare))


def test_a_description_over_100_characters_is_refused():
    async def wordy(self, ctx: Ctx, x: Annotated[int, Param("x" * 101)]) -> str:
        """Fine."""
        return "ok"

    with pytest.raises(SpecError, match="parameter 'x': description"):
        _cog(command("run")(wordy))


def test_more_than_25_parameters_are_refused():
    params = ", ".join(f"p{i}: Annotated[int, Param('n')] = 0" for i in range(26))
    namespace: dict[str, Any] = {"Annotated": Annotated, "Param": Param, "Ctx": Ctx}
    exec(
        f"async def many(self, ctx: Ctx, {params}) -> str:\n    'Many.'\n    return 'ok'",
        namespace,
    )
    with pytest.raises(SpecError, match="at most 25"):
        _cog(command("run")(namespace["many"]))


def test_a_required_parameter_after_an_optional_one_is_refused():
    async def order(
        self,
        ctx: Ctx,
        a: Annotated[int | None, Param("a")] = None,
        *,
        b: Annotated[int, Param("b")],
    ) -> str:
        """Order."""
        return "ok"

    with pytest.raises(SpecError, match="follows an optional"):
        _cog(command("run")(order))


def test_a_parameter_without_param_metadata_is_refused():
    async def plain(self, ctx: Ctx, x: int) -> str:
        """Plain."""
        return "ok"

    with pytest.raises(SpecError, match="needs Annotated"):
        _cog(command("run")(plain))


def test_a_type_no_platform_can_carry_is_refused():
    async def odd(self, ctx: Ctx, x: Annotated[complex, Param("x")]) -> str:
        """Odd."""
        return "ok"

    with pytest.raises(SpecError, match="no parameter kind"):
        _cog(command("run")(odd))


def test_only_the_last_positional_text_may_take_the_rest():
    async def greedy(
        self, ctx: Ctx, a: Annotated[str, Param("a", rest=True)], b: Annotated[str, Param("b")]
    ) -> str:
        """Greedy."""
        return "ok"

    with pytest.raises(SpecError, match="last positional"):
        _cog(command("run")(greedy))


def test_unknown_rights_are_refused_at_declaration():
    with pytest.raises(SpecError, match="unknown rights"):
        requires("wizard")


def test_a_cog_storing_personal_data_must_say_how_to_export_and_erase_it():
    with pytest.raises(SpecError, match="implement export_data and erase_data"):
        type("Leaky", (Cog,), {"__doc__": "Leaky.", "group": "leaky"})

    async def export_data(self, user: UserRef) -> dict[str, Any]:
        return {}

    async def erase_data(self, user: UserRef, ctx: Ctx | None = None) -> None:
        return None

    ok = type("Careful", (Cog,), {"__doc__": "Careful.", "group": "careful",
                                   "export_data": export_data, "erase_data": erase_data})  # fmt: skip
    assert ok.personal_data


def test_every_shipped_command_passes_validation_and_has_unique_names(tmp_path):
    from tests.harness import make_app

    app = make_app(tmp_path)
    names = [spec.qualified_name for spec in app.services.registry.specs]
    assert len(names) == len(set(names))
    assert "volunteer join" in names and "help" in names
    app.db.close()


def test_the_readme_command_reference_names_every_command(tmp_path):
    from pathlib import Path

    from tests.harness import make_app

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    reference = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    app = make_app(tmp_path)
    try:
        for spec in app.services.registry.specs:
            name = spec.group if spec.default else spec.qualified_name
            assert f"`{name}" in reference, f"README's command table lacks {name}"
    finally:
        app.db.close()
