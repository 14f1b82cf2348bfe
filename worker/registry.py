"""Entities by handlerId (mediasoup's ChannelMessageRegistrator).

Every entity that answers requests is registered when it is created and unregistered when it
closes; a duplicate id is refused. ``dump()`` lists what is registered, so a leak is visible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from worker.errors import WorkerError

if TYPE_CHECKING:
    from worker.entity import Entity

__all__ = ["Registry"]


class Registry:
    def __init__(self) -> None:
        self._entities: dict[str, Entity] = {}

    def __len__(self) -> int:
        return len(self._entities)

    def __contains__(self, handler_id: object) -> bool:
        return handler_id in self._entities

    def check_free(self, handler_id: str) -> None:
        if handler_id in self._entities:
            raise WorkerError(f"an entity with id {handler_id!r} already exists")

    def register(self, entity: Entity) -> None:
        self.check_free(entity.id)
        self._entities[entity.id] = entity

    def unregister(self, entity: Entity) -> None:
        if self._entities.get(entity.id) is entity:
            del self._entities[entity.id]

    def get(self, handler_id: str) -> Entity | None:
        return self._entities.get(handler_id)

    def ids(self) -> list[str]:
        return list(self._entities)
