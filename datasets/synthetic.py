"""Synthetic lifelong data with a known ground truth.

World: items belong to clusters (interests). Each user holds a few interests, each
active over its own stretch of the user's timeline, so some interests were shown
only long ago (dormant). Activity is power-law, from ``min_history`` events up to
``max_history`` (the ``heavy_users`` heaviest users get exactly ``max_history``).

Impressions come after the history cutoff. The click probability (the oracle)
depends on the user's *whole* history: how often the user ever engaged with the
candidate's cluster, however long ago, plus an item-quality term. A model that only
sees recent events cannot see dormant interests, so truncation loses information
that the oracle AUC makes measurable.

Everything is deterministic by seed and vectorised with numpy, generated in user
blocks so that memory stays bounded at large sizes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from vista.config import GeneratorConfig

EVENT_TYPES = ("view", "click", "purchase")
EVENT_TYPE_WEIGHTS = (0.70, 0.25, 0.05)
EXPLORATION_RATE = 0.08  # share of events outside the user's interests
ORACLE_BIAS = -2.0
ORACLE_AFFINITY = 3.5
ORACLE_SATURATION = 8.0  # lifetime events in a cluster at which affinity is ~76% of max
ORACLE_QUALITY = 0.8
USERS_PER_BLOCK = 256

EVENTS_SCHEMA = pa.schema(
    [
        ("user_id", pa.int64()),
        ("item_id", pa.int64()),
        ("category", pa.int64()),
        ("event_type", pa.string()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
        ("event_date", pa.string()),
    ]
)
IMPRESSIONS_SCHEMA = pa.schema(
    [
        ("impression_id", pa.int64()),
        ("user_id", pa.int64()),
        ("item_id", pa.int64()),
        ("category", pa.int64()),
        ("event_timestamp", pa.timestamp("us", tz="UTC")),
        ("label", pa.int8()),
        ("oracle_prob", pa.float64()),
        ("impression_date", pa.string()),
    ]
)


@dataclass(frozen=True)
class World:
    """Items, clusters and users' interests: the ground truth of one seed."""

    item_cluster: np.ndarray  # (n_items,) cluster of each item
    item_quality: np.ndarray  # (n_items,) standard-normal quality
    cluster_items: list[np.ndarray]  # items of each cluster, most popular first
    history_length: np.ndarray  # (n_users,)
    interests: np.ndarray  # (n_users, M) cluster ids
    interest_start: np.ndarray  # (n_users, M) timeline fraction where it starts
    interest_end: np.ndarray  # (n_users, M) timeline fraction where it ends


def history_lengths(cfg: GeneratorConfig, rng: np.random.Generator) -> np.ndarray:
    """Power-law activity between min_history and max_history; the heaviest users at max."""
    u = rng.random(cfg.n_users)
    lengths = cfg.min_history * (1.0 - u) ** (-1.0 / cfg.activity_alpha)
    lengths = np.minimum(lengths, cfg.max_history).astype(np.int64)
    lengths[: cfg.heavy_users] = cfg.max_history
    return lengths


def build_world(cfg: GeneratorConfig) -> World:
    rng = np.random.default_rng(cfg.seed)
    item_cluster = rng.integers(0, cfg.n_clusters, cfg.n_items)
    # every cluster gets at least one item, so candidates can always be drawn
    item_cluster[: cfg.n_clusters] = np.arange(cfg.n_clusters)
    item_quality = rng.standard_normal(cfg.n_items)
    popularity = rng.pareto(1.5, cfg.n_items)
    cluster_items = []
    for c in range(cfg.n_clusters):
        members = np.flatnonzero(item_cluster == c)
        cluster_items.append(members[np.argsort(-popularity[members])])
    m = min(cfg.interests_per_user, cfg.n_clusters)
    interests = np.argsort(rng.random((cfg.n_users, cfg.n_clusters)), axis=1)[:, :m]
    # Each interest is active over a window of the user's timeline. The first is
    # lifelong; about a third end before the middle (dormant, "shown long ago").
    start = rng.uniform(0.0, 0.7, (cfg.n_users, m))
    length = rng.uniform(0.15, 0.5, (cfg.n_users, m))
    end = np.minimum(start + length, 1.0)
    start[:, 0], end[:, 0] = 0.0, 1.0
    return World(
        item_cluster=item_cluster,
        item_quality=item_quality,
        cluster_items=cluster_items,
        history_length=history_lengths(cfg, rng),
        interests=interests,
        interest_start=start,
        interest_end=end,
    )


def _items_in_clusters(world: World, clusters: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One item per requested cluster, skewed towards each cluster's popular items."""
    sizes = np.array([len(world.cluster_items[c]) for c in range(len(world.cluster_items))])
    rank = np.floor(rng.random(len(clusters)) ** 2 * sizes[clusters]).astype(np.int64)
    flat = np.concatenate(world.cluster_items)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    return flat[offsets[clusters] + rank]


def _day_strings(ts_us: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(ts_us.astype("datetime64[us]"), unit="D")


def _epoch_us(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def generate_event_blocks(
    cfg: GeneratorConfig, world: World
) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """Yield (events table, per-user cluster counts) for blocks of users."""
    start_us = _epoch_us(dt.datetime.combine(cfg.start_date, dt.time(), tzinfo=dt.UTC))
    span_us = _epoch_us(cfg.cutoff) - start_us
    for first in range(0, cfg.n_users, USERS_PER_BLOCK):
        users = np.arange(first, min(first + USERS_PER_BLOCK, cfg.n_users))
        rng = np.random.default_rng([cfg.seed, 1, first])
        lengths = world.history_length[users]
        user_of_event = np.repeat(users, lengths)
        # position of each event within its user's timeline, in [0, 1)
        starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
        position = (np.arange(len(user_of_event)) - starts) / np.repeat(lengths, lengths)
        # pick one of the user's interests active at that position
        active = (world.interest_start[user_of_event] <= position[:, None]) & (
            position[:, None] < world.interest_end[user_of_event]
        )
        scores = rng.random(active.shape) * active
        choice = np.argmax(scores, axis=1)
        cluster = world.interests[user_of_event, choice]
        explore = rng.random(len(cluster)) < EXPLORATION_RATE
        cluster[explore] = rng.integers(0, len(world.cluster_items), explore.sum())
        items = _items_in_clusters(world, cluster, rng)
        # time-sorted timestamps per user: sorted uniforms within each user's segment
        offsets = rng.random(len(user_of_event))
        # user_of_event is ascending, so this sorts offsets within each user's segment
        order = np.lexsort((offsets, user_of_event))
        ts = start_us + (offsets[order] * span_us).astype(np.int64)
        event_type = rng.choice(len(EVENT_TYPES), len(items), p=EVENT_TYPE_WEIGHTS)
        counts = np.zeros((len(users), len(world.cluster_items)), dtype=np.int64)
        np.add.at(counts, (user_of_event - first, cluster), 1)
        table = pa.table(
            {
                "user_id": pa.array(user_of_event, pa.int64()),
                "item_id": pa.array(items, pa.int64()),
                "category": pa.array(world.item_cluster[items], pa.int64()),
                "event_type": pa.array(np.array(EVENT_TYPES)[event_type]),
                "event_timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
                "event_date": pa.array(_day_strings(ts)),
            },
            schema=EVENTS_SCHEMA,
        )
        yield table, counts


def oracle_probability(lifetime_cluster_count: np.ndarray, item_quality: np.ndarray) -> np.ndarray:
    """True click probability of an impression given the user's whole history."""
    affinity = np.tanh(lifetime_cluster_count / ORACLE_SATURATION)
    logit = ORACLE_BIAS + ORACLE_AFFINITY * affinity + ORACLE_QUALITY * item_quality
    return 1.0 / (1.0 + np.exp(-logit))


def generate_impressions(
    cfg: GeneratorConfig, world: World, users: np.ndarray, cluster_counts: np.ndarray
) -> pa.Table:
    """Impressions after the cutoff for ``users``; labels drawn from the oracle."""
    rng = np.random.default_rng([cfg.seed, 2, int(users[0]) if len(users) else 0])
    n = cfg.impressions_per_user
    user_of = np.repeat(users, n)
    local = np.repeat(np.arange(len(users)), n)
    # half the candidates come from the user's interests (dormant ones included)
    from_interest = rng.random(len(user_of)) < 0.5
    pick = rng.integers(0, world.interests.shape[1], len(user_of))
    cluster = np.where(
        from_interest,
        world.interests[user_of, pick],
        rng.integers(0, len(world.cluster_items), len(user_of)),
    )
    items = _items_in_clusters(world, cluster, rng)
    prob = oracle_probability(cluster_counts[local, cluster], world.item_quality[items])
    label = (rng.random(len(prob)) < prob).astype(np.int8)
    cutoff_us = _epoch_us(cfg.cutoff)
    ts = cutoff_us + rng.integers(0, cfg.impression_days * 86_400_000_000, len(user_of))
    return pa.table(
        {
            "impression_id": pa.array(user_of * n + np.arange(len(user_of)) % n, pa.int64()),
            "user_id": pa.array(user_of, pa.int64()),
            "item_id": pa.array(items, pa.int64()),
            "category": pa.array(world.item_cluster[items], pa.int64()),
            "event_timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "label": pa.array(label, pa.int8()),
            "oracle_prob": pa.array(prob, pa.float64()),
            "impression_date": pa.array(_day_strings(ts)),
        },
        schema=IMPRESSIONS_SCHEMA,
    )


def generate(cfg: GeneratorConfig) -> Iterator[tuple[pa.Table, pa.Table]]:
    """Yield (events, impressions) per block of users."""
    world = build_world(cfg)
    first = 0
    for events, counts in generate_event_blocks(cfg, world):
        users = np.arange(first, first + counts.shape[0])
        yield events, generate_impressions(cfg, world, users, counts)
        first += counts.shape[0]
