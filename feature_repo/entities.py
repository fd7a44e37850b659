from feast import Entity, ValueType

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
