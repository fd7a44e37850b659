"""Entities: who and what the features are about."""

from __future__ import annotations

from typing import NamedTuple

from feast import Entity, ValueType


class Entities(NamedTuple):
    user: Entity
    category: Entity


def entities() -> Entities:
    """The user (join key ``user_id``) and the item category (join key ``category``)."""
    user = Entity(
        name="user",
        join_keys=["user_id"],
        value_type=ValueType.INT64,
        description="A user whose lifelong history is summarized.",
    )
    category = Entity(
        name="category",
        join_keys=["category"],
        value_type=ValueType.INT64,
        description="An item category (cluster); with user, the key of SIM's hard search.",
    )
    return Entities(user, category)
