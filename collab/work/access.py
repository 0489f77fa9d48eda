"""Who may do what with people and work (docs/permissions.md has the matrix).

An :class:`Actor` is a principal with its teams. Rules are methods here, one
place; endpoints call them and raise :class:`Forbidden` with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from collab.auth import Principal
from collab.errors import Forbidden
from collab.store.database import Connection


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: int | None
    roles: frozenset[str]
    teams: frozenset[int]
    is_link: bool = False

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles and not self.is_link

    @property
    def is_manager(self) -> bool:
        return "manager" in self.roles and not self.is_link

    @property
    def managed(self) -> frozenset[int]:
        """Teams this actor manages (a manager manages the teams it is in)."""
        return self.teams if self.is_manager else frozenset()

    @property
    def reviewed(self) -> frozenset[int]:
        return self.teams if "reviewer" in self.roles and not self.is_link else frozenset()

    def manages(self, team: int) -> bool:
        return self.is_admin or team in self.managed

    def reviews(self, team: int) -> bool:
        return self.is_admin or team in self.reviewed

    def reads_work_of(self, team: int) -> bool:
        """Tasks, projects and their annotations: admins, the team's managers and reviewers."""
        return self.is_admin or team in self.managed or team in self.reviewed

    def require_user(self) -> int:
        if self.is_link or self.user_id is None:
            raise Forbidden("a sharing link cannot do this")
        return self.user_id

    def require_manager_of(self, team: int, what: str) -> None:
        if not self.manages(team):
            raise Forbidden(f"{what} needs an admin or a manager of team {team}")

    def require_reader_of(self, team: int, what: str) -> None:
        if not self.reads_work_of(team):
            raise Forbidden(f"{what} needs an admin, or a manager or reviewer of team {team}")


async def actor(db: Connection, who: Principal) -> Actor:
    if who.is_link or who.user_id is None:
        return Actor(None, frozenset(), frozenset(), is_link=True)
    rows = await db.fetch("SELECT team_id FROM team_members WHERE user_id = $1", who.user_id)
    return Actor(who.user_id, who.roles, frozenset(r["team_id"] for r in rows))
