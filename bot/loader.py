"""Loads the cog modules named in config (default: every public module under ``cogs``)."""

import importlib
import inspect
import pkgutil

import cogs
from bot.commands import Cog
from bot.services import Services


class UnknownCog(ValueError):
    """A configured cog name with no module behind it."""


def available() -> list[str]:
    """Names of the cog modules; private ``_helpers`` are skipped."""
    return sorted(
        info.name for info in pkgutil.iter_modules(cogs.__path__) if not info.name.startswith("_")
    )


def load(names: list[str] | None, services: Services) -> list[Cog]:
    """Import, instantiate and register the cogs; raises UnknownCog for a bad name."""
    known = available()
    wanted = known if names is None else names
    loaded: list[Cog] = []
    for name in wanted:
        if name not in known:
            raise UnknownCog(f"bot.cogs: no cog named {name!r}; available: {', '.join(known)}")
        module = importlib.import_module(f"cogs.{name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Cog) and cls is not Cog and cls.__module__ == module.__name__:
                cog = cls(services)
                services.registry.add(cog)
                loaded.append(cog)
    return loaded
