"""Who someone is: a person on one platform."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UserRef:
    """A person on one platform. Identity is (platform, external_id), never a display name."""

    platform: str
    external_id: str
    display_name: str = ""

    @property
    def label(self) -> str:
        """What to call them in a reply."""
        return self.display_name or self.external_id

    def __repr__(self) -> str:
        # Reprs end up in logs; ids and names are personal data.
        return f"UserRef(platform={self.platform!r})"
