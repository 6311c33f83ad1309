"""What a provisioning run did, resource by resource, and its one-line rendering."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["created", "updated", "unchanged", "removed"]


@dataclass
class Summary:
    """Outcome per resource, keyed `kind:name` (e.g. `stream:LK_EVENTS`)."""

    outcomes: dict[str, Outcome] = field(default_factory=dict)

    def record(self, kind: str, name: str, outcome: Outcome) -> None:
        key = f"{kind}:{name}"
        # A resource changed in an earlier pass of a retried step stays "changed".
        if outcome != "unchanged" or key not in self.outcomes:
            self.outcomes[key] = outcome

    def names(self, outcome: Outcome) -> list[str]:
        return [key for key, got in self.outcomes.items() if got == outcome]

    @property
    def changed(self) -> bool:
        return any(got != "unchanged" for got in self.outcomes.values())

    def line(self) -> str:
        """`provisioned created=N updated=N removed=N unchanged=N`, then what changed."""
        counts = " ".join(
            f"{outcome}={len(self.names(outcome))}"
            for outcome in ("created", "updated", "removed", "unchanged")
        )
        details = [
            f"{outcome}: {', '.join(self.names(outcome))}"
            for outcome in ("created", "updated", "removed")
            if self.names(outcome)
        ]
        return " | ".join([f"provisioned {counts}", *details])
