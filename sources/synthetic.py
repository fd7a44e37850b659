"""Synthetic lifelong data with a known ground truth, in two named regimes.

``counts`` (kept as it was, for comparison): items belong to clusters; each user holds
a few interests, each active over a stretch of the user's timeline. The click
probability is ``sigmoid(-2 + 3.5 tanh(c / 8) + 0.8 quality)`` with ``c`` the lifetime
count of the user's events in the candidate's cluster: it saturates after a few dozen
events, so long histories add little.

``lifelong``: a world where a short window misses signal (docs/WORLDS.md has the fixed
parameters and why each component is there). The oracle's logit for candidate ``j`` of
topic ``t(j)``, shown to user ``u`` at time ``s`` of the impression window, is

    bias + quality_weight * (q_j + drift * s * delta_j)      item quality, drifting
         + topic_weight  * log1p(n_u(t(j)))                   fine-grained interests
         + repeat_weight * log1p(n_u(j))                      repeat consumption
         + pair_weight   * [n_u(antecedent(j)) > 0]           long-range pairs
         + intent_weight * [t(j) = topic of the last session] short-term intent

with ``n_u`` counts over the user's whole history before the cutoff. Interests follow a
Zipf law over many latent topics (categories are coarser groups of topics), so rare
interests only show in long histories; a share of them are dormant (active early in
the timeline, then silent for months) and return as candidates in the impression
window; favourite items are re-consumed; each item has an antecedent item whose
consumption, however long ago, makes it likely.

Every impression also carries the oracle computed from less: from nothing
(``oracle_prob_blind``: the candidate alone), from the last 100 and from the last 2,048
events (the same formula with counts over that window). Their AUCs against the labels
are the world's headroom table: how much of the oracle's lift needs more than the last
2,048 events.

Everything is deterministic by seed and vectorised with numpy, generated in user
blocks so that memory stays bounded at large sizes.

Long because a world and its oracle are read together: the generator that draws the
events and the formula that scores them must agree term by term.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from vista.core.config import GeneratorConfig, LifelongWorldConfig

EVENT_TYPES = ("view", "click", "purchase")
EVENT_TYPE_WEIGHTS = (0.70, 0.25, 0.05)
EXPLORATION_RATE = 0.08  # share of events outside the user's interests
ORACLE_BIAS = -2.0
ORACLE_AFFINITY = 3.5
ORACLE_SATURATION = 8.0  # lifetime events in a cluster at which affinity is ~76% of max
ORACLE_QUALITY = 0.8
USERS_PER_BLOCK = 256
MICROS_PER_DAY = 86_400_000_000
# the windows the headroom table compares: the oracle from the last W events
ORACLE_WINDOWS = {"oracle_prob_last100": 100, "oracle_prob_last2048": 2048}
ORACLE_COLUMNS = ("oracle_prob", "oracle_prob_blind", *ORACLE_WINDOWS)
LONG_USER_EVENTS = 1_000  # users with at least this many events get long_user_impressions

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
        *((name, pa.float64()) for name in ORACLE_COLUMNS),
        ("impression_date", pa.string()),
    ]
)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _day_strings(ts_us: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(ts_us.astype("datetime64[us]"), unit="D")


def _epoch_us(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1_000_000)


def history_lengths(cfg: GeneratorConfig, rng: np.random.Generator) -> np.ndarray:
    """Power-law activity between min_history and max_history; the heaviest users at max."""
    u = rng.random(cfg.n_users)
    lengths = cfg.min_history * (1.0 - u) ** (-1.0 / cfg.activity_alpha)
    lengths = np.minimum(lengths, cfg.max_history).astype(np.int64)
    lengths[: cfg.heavy_users] = cfg.max_history
    return lengths


def impressions_per_user(cfg: GeneratorConfig, lengths: np.ndarray) -> np.ndarray:
    """Impressions of each user: more for long histories when long_user_impressions is set."""
    n = np.full(len(lengths), cfg.impressions_per_user, dtype=np.int64)
    if cfg.long_user_impressions:
        n[lengths >= LONG_USER_EVENTS] = cfg.long_user_impressions
    return n


# ---------------------------------------------------------------- counting over windows
@dataclass(frozen=True)
class EventBlock:
    """One block of users' events, each user's events contiguous and in time order."""

    first_user: int
    lengths: np.ndarray  # (b,) events per user
    user_of_event: np.ndarray  # (n,) global user id
    items: np.ndarray  # (n,)
    topics: np.ndarray  # (n,) the clusters (counts) or latent topics (lifelong)

    @property
    def local_user(self) -> np.ndarray:
        return self.user_of_event - self.first_user

    def depth(self) -> np.ndarray:
        """(n,) 0 for each user's most recent event, 1 for the one before, ..."""
        ends = np.repeat(np.cumsum(self.lengths), self.lengths)
        return ends - 1 - np.arange(len(self.items))

    def window(self, last: int | None) -> np.ndarray:
        """(n,) bool: the event is among its user's ``last`` most recent (None: all)."""
        if last is None:
            return np.ones(len(self.items), dtype=bool)
        return self.depth() < last


class PairCounts:
    """Counts of (local user, key) pairs over some events, looked up for queries."""

    def __init__(self, local_user: np.ndarray, keys: np.ndarray, n_keys: int) -> None:
        self.n_keys = n_keys
        self.codes, self.counts = np.unique(local_user * n_keys + keys, return_counts=True)

    def lookup(self, local_user: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """(q,) how often each (user, key) occurred (0 when never)."""
        query = local_user * self.n_keys + keys
        pos = np.minimum(np.searchsorted(self.codes, query), max(len(self.codes) - 1, 0))
        if not len(self.codes):
            return np.zeros(len(query), dtype=np.int64)
        return np.where(self.codes[pos] == query, self.counts[pos], 0)


# ---------------------------------------------------------------- regime `counts`
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


def _events_table(block: EventBlock, ts: np.ndarray, categories: np.ndarray,
                  rng: np.random.Generator) -> pa.Table:  # fmt: skip
    event_type = rng.choice(len(EVENT_TYPES), len(block.items), p=EVENT_TYPE_WEIGHTS)
    return pa.table(
        {
            "user_id": pa.array(block.user_of_event, pa.int64()),
            "item_id": pa.array(block.items, pa.int64()),
            "category": pa.array(categories, pa.int64()),
            "event_type": pa.array(np.array(EVENT_TYPES)[event_type]),
            "event_timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "event_date": pa.array(_day_strings(ts)),
        },
        schema=EVENTS_SCHEMA,
    )


def _timeline(cfg: GeneratorConfig, user_of_event: np.ndarray, rng) -> np.ndarray:
    """Time-sorted timestamps per user: sorted uniforms within each user's segment."""
    start_us = _epoch_us(dt.datetime.combine(cfg.start_date, dt.time(), tzinfo=dt.UTC))
    span_us = _epoch_us(cfg.cutoff) - start_us
    offsets = rng.random(len(user_of_event))
    # user_of_event is ascending, so this sorts offsets within each user's segment
    order = np.lexsort((offsets, user_of_event))
    return start_us + (offsets[order] * span_us).astype(np.int64)


def _positions(lengths: np.ndarray) -> np.ndarray:
    """(n,) position of each event within its user's timeline, in [0, 1)."""
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    return (np.arange(int(lengths.sum())) - starts) / np.repeat(lengths, lengths)


def generate_event_blocks(
    cfg: GeneratorConfig, world: World
) -> Iterator[tuple[pa.Table, EventBlock]]:
    """Yield (events table, the block's events) for blocks of users (regime ``counts``)."""
    for first in range(0, cfg.n_users, USERS_PER_BLOCK):
        users = np.arange(first, min(first + USERS_PER_BLOCK, cfg.n_users))
        rng = np.random.default_rng([cfg.seed, 1, first])
        lengths = world.history_length[users]
        user_of_event = np.repeat(users, lengths)
        position = _positions(lengths)
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
        ts = _timeline(cfg, user_of_event, rng)
        block = EventBlock(first, lengths, user_of_event, items, cluster)
        yield _events_table(block, ts, world.item_cluster[items], rng), block


def oracle_probability(lifetime_cluster_count: np.ndarray, item_quality: np.ndarray) -> np.ndarray:
    """True click probability (regime ``counts``) given the user's whole history."""
    affinity = np.tanh(lifetime_cluster_count / ORACLE_SATURATION)
    logit = ORACLE_BIAS + ORACLE_AFFINITY * affinity + ORACLE_QUALITY * item_quality
    return _sigmoid(logit)


def generate_impressions(cfg: GeneratorConfig, world: World, block: EventBlock) -> pa.Table:
    """Impressions after the cutoff for the block's users; labels drawn from the oracle."""
    users = np.arange(block.first_user, block.first_user + len(block.lengths))
    rng = np.random.default_rng([cfg.seed, 2, int(users[0]) if len(users) else 0])
    per_user = impressions_per_user(cfg, block.lengths)
    user_of = np.repeat(users, per_user)
    local = user_of - block.first_user
    # half the candidates come from the user's interests (dormant ones included)
    from_interest = rng.random(len(user_of)) < 0.5
    pick = rng.integers(0, world.interests.shape[1], len(user_of))
    cluster = np.where(
        from_interest,
        world.interests[user_of, pick],
        rng.integers(0, len(world.cluster_items), len(user_of)),
    )
    items = _items_in_clusters(world, cluster, rng)
    quality = world.item_quality[items]

    def prob(last: int | None) -> np.ndarray:
        seen = block.window(last)
        counts = PairCounts(block.local_user[seen], block.topics[seen], len(world.cluster_items))
        return oracle_probability(counts.lookup(local, cluster), quality)

    oracle = {"oracle_prob": prob(None), "oracle_prob_blind": oracle_probability(0 * quality,
                                                                                  quality)}  # fmt: skip
    oracle.update({name: prob(last) for name, last in ORACLE_WINDOWS.items()})
    label = (rng.random(len(user_of)) < oracle["oracle_prob"]).astype(np.int8)
    ts = _epoch_us(cfg.cutoff) + rng.integers(0, cfg.impression_days * MICROS_PER_DAY,
                                              len(user_of))  # fmt: skip
    return _impressions_table(cfg, user_of, per_user, items, world.item_cluster[items], ts, label,
                              oracle)  # fmt: skip


def _impressions_table(cfg: GeneratorConfig, user_of, per_user, items, categories, ts, label,
                       oracle) -> pa.Table:  # fmt: skip
    # user * (most impressions any user gets) + the impression's rank within its user
    rank = np.arange(len(user_of)) - np.repeat(np.cumsum(per_user) - per_user, per_user)
    stride = max(cfg.impressions_per_user, cfg.long_user_impressions)
    return pa.table(
        {
            "impression_id": pa.array(user_of * stride + rank, pa.int64()),
            "user_id": pa.array(user_of, pa.int64()),
            "item_id": pa.array(items, pa.int64()),
            "category": pa.array(categories, pa.int64()),
            "event_timestamp": pa.array(ts, pa.timestamp("us", tz="UTC")),
            "label": pa.array(label, pa.int8()),
            **{name: pa.array(oracle[name], pa.float64()) for name in ORACLE_COLUMNS},
            "impression_date": pa.array(_day_strings(ts)),
        },
        schema=IMPRESSIONS_SCHEMA,
    )


# ---------------------------------------------------------------- regime `lifelong`
@dataclass(frozen=True)
class LifelongWorld:
    """Topics, items and their relations; users' traits are drawn per block."""

    topic_category: np.ndarray  # (n_topics,) visible category of each latent topic
    item_topic: np.ndarray  # (n_items,)
    item_quality: np.ndarray  # (n_items,) standard normal
    quality_drift: np.ndarray  # (n_items,) standard normal: direction of the drift
    topic_items: np.ndarray  # (n_items,) items grouped by topic, most popular first
    topic_offsets: np.ndarray  # (n_topics + 1,)
    antecedent: np.ndarray  # (n_items,) consuming antecedent[j] makes j likely
    partner: np.ndarray  # (n_items,) its inverse: consuming a makes partner[a] likely
    history_length: np.ndarray  # (n_users,)

    def items_of_topics(self, topics: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One item per topic, skewed towards popular items by ``u`` in [0, 1)."""
        sizes = np.diff(self.topic_offsets)[topics]
        rank = np.floor(u**2 * sizes).astype(np.int64)
        return self.topic_items[self.topic_offsets[topics] + rank]

    def favourite(self, users: np.ndarray, topics: np.ndarray, which: np.ndarray) -> np.ndarray:
        """The user's ``which``-th favourite item of the topic (fixed per user and topic)."""
        sizes = np.diff(self.topic_offsets)[topics]
        mixed = (users * 1_000_003 + topics * 7_919 + which * 104_729) % 2_147_483_647
        return self.topic_items[self.topic_offsets[topics] + mixed % sizes]


def build_lifelong_world(cfg: GeneratorConfig) -> LifelongWorld:
    k = cfg.lifelong
    rng = np.random.default_rng([cfg.seed, 10])
    topic_category = rng.integers(0, cfg.n_clusters, k.n_topics)
    topic_category[: cfg.n_clusters] = np.arange(cfg.n_clusters)
    item_topic = rng.integers(0, k.n_topics, cfg.n_items)
    item_topic[: k.n_topics] = np.arange(k.n_topics)  # every topic has an item
    item_quality = rng.standard_normal(cfg.n_items)
    quality_drift = rng.standard_normal(cfg.n_items)
    popularity = rng.pareto(1.5, cfg.n_items)
    order = np.lexsort((-popularity, item_topic))
    offsets = np.concatenate([[0], np.cumsum(np.bincount(item_topic, minlength=k.n_topics))])
    partner = rng.permutation(cfg.n_items)
    antecedent = np.empty_like(partner)
    antecedent[partner] = np.arange(cfg.n_items)
    return LifelongWorld(
        topic_category=topic_category,
        item_topic=item_topic,
        item_quality=item_quality,
        quality_drift=quality_drift,
        topic_items=order,
        topic_offsets=offsets,
        antecedent=antecedent,
        partner=partner,
        history_length=history_lengths(cfg, rng),
    )


@dataclass(frozen=True)
class UserTraits:
    """The block's users' interests: (b, M) topics, weights, active spans; (b,) intent."""

    interests: np.ndarray
    weights: np.ndarray
    start: np.ndarray
    end: np.ndarray
    dormant: np.ndarray  # (b, M) bool
    intent: np.ndarray  # (b,) topic of the last session


def user_traits(k: LifelongWorldConfig, n_users: int, rng: np.random.Generator) -> UserTraits:
    m = min(k.interests_per_user, k.n_topics)
    if k.n_topics <= 4096:
        interests = np.argsort(rng.random((n_users, k.n_topics)), axis=1)[:, :m]
    else:  # duplicates are rare among many topics and harmless
        interests = rng.integers(0, k.n_topics, (n_users, m))
    weights = np.tile(1.0 / np.arange(1, m + 1) ** k.interest_zipf, (n_users, 1))
    weights /= weights.sum(1, keepdims=True)
    # interest 0 (the heaviest) is lifelong; the next ones are dormant: active early,
    # then silent for at least 40% of the timeline; the rest run until the cutoff
    n_dormant = min(round(k.dormant_share * m), m - 1)
    dormant = np.zeros((n_users, m), dtype=bool)
    dormant[:, 1 : 1 + n_dormant] = True
    start = np.where(dormant, rng.uniform(0.0, 0.3, (n_users, m)),
                     rng.uniform(0.0, 0.7, (n_users, m)))  # fmt: skip
    end = np.where(dormant, start + rng.uniform(0.1, 0.3, (n_users, m)), 1.0)
    start[:, 0] = 0.0
    from_interest = rng.random(n_users) < 0.5
    intent = np.where(from_interest, interests[np.arange(n_users), rng.integers(0, m, n_users)],
                      rng.integers(0, k.n_topics, n_users))  # fmt: skip
    return UserTraits(interests, weights, start, end, dormant, intent)


def _choose_interest(traits: UserTraits, local: np.ndarray, position: np.ndarray,
                     rng: np.random.Generator, chunk: int = 1 << 20) -> np.ndarray:  # fmt: skip
    """(n,) index of the interest each event comes from: among the interests active at
    its position, in proportion to their weights (chunked: a 1M-event user x M)."""
    out = np.empty(len(local), dtype=np.int64)
    for lo in range(0, len(local), chunk):
        u, p = local[lo : lo + chunk], position[lo : lo + chunk, None]
        active = (traits.start[u] <= p) & (p < traits.end[u])
        active[:, 0] = True  # the lifelong interest is always there
        cum = np.cumsum(traits.weights[u] * active, axis=1)
        draw = rng.random(len(u))[:, None] * cum[:, -1:]
        out[lo : lo + chunk] = np.minimum((cum <= draw).sum(1), cum.shape[1] - 1)
    return out


def generate_lifelong_blocks(
    cfg: GeneratorConfig, world: LifelongWorld
) -> Iterator[tuple[pa.Table, EventBlock, UserTraits]]:
    k = cfg.lifelong
    for first in range(0, cfg.n_users, USERS_PER_BLOCK):
        users = np.arange(first, min(first + USERS_PER_BLOCK, cfg.n_users))
        traits = user_traits(k, len(users), np.random.default_rng([cfg.seed, 11, first]))
        rng = np.random.default_rng([cfg.seed, 12, first])
        lengths = world.history_length[users]
        user_of_event = np.repeat(users, lengths)
        local = user_of_event - first
        choice = _choose_interest(traits, local, _positions(lengths), rng)
        topics = traits.interests[local, choice]
        explore = rng.random(len(topics)) < EXPLORATION_RATE
        topics[explore] = rng.integers(0, k.n_topics, int(explore.sum()))
        # the last session: its events all come from the user's current intent
        depth = np.repeat(np.cumsum(lengths), lengths) - 1 - np.arange(len(topics))
        in_session = depth < k.session_events
        topics[in_session] = traits.intent[local[in_session]]
        items = world.items_of_topics(topics, rng.random(len(topics)))
        repeat = (rng.random(len(topics)) < k.repeat_rate) & ~in_session
        items[repeat] = world.favourite(user_of_event[repeat], topics[repeat],
                                        rng.integers(0, k.favourites_per_topic, repeat.sum()))  # fmt: skip
        ts = _timeline(cfg, user_of_event, rng)
        block = EventBlock(first, lengths, user_of_event, items, topics)
        table = _events_table(block, ts, world.topic_category[topics], rng)
        yield table, block, traits


def _lifelong_candidates(cfg: GeneratorConfig, world: LifelongWorld, block: EventBlock,
                         traits: UserTraits, local: np.ndarray, rng) -> np.ndarray:  # fmt: skip
    """(q,) candidate items by source: active or dormant interests, repeats and partners
    of the user's own history, the intent, or anything."""
    k = cfg.lifelong
    q = len(local)
    shares = [k.candidates_active, k.candidates_dormant, k.candidates_repeat,
              k.candidates_pair, k.candidates_intent]  # fmt: skip
    source = np.searchsorted(np.cumsum(shares), rng.random(q), side="right")  # 5: random
    m = traits.interests.shape[1]
    # an interest of the wanted kind, uniformly (rare interests as often as heavy ones)
    noise = rng.random((q, m))
    dormant = traits.dormant[local]
    active_pick = np.argmax(noise * ~dormant, axis=1)
    dormant_pick = np.where(dormant.any(1), np.argmax(noise * dormant, axis=1), active_pick)
    topics = np.where(source == 1, traits.interests[local, dormant_pick],
                      traits.interests[local, active_pick])  # fmt: skip
    topics = np.where(source == 4, traits.intent[local], topics)
    topics = np.where(source == 5, rng.integers(0, k.n_topics, q), topics)
    items = world.items_of_topics(topics, rng.random(q))
    # repeats and pairs: an event of the user's history, uniformly over its whole length
    starts = np.cumsum(block.lengths) - block.lengths
    has_history = block.lengths[local] > 0
    event = starts[local] + np.floor(rng.random(q) * block.lengths[local]).astype(np.int64)
    past = block.items[np.minimum(event, len(block.items) - 1)] if len(block.items) else items
    use_past = has_history & ((source == 2) | (source == 3))
    past_item = np.where(source == 3, world.partner[past], past)
    return np.where(use_past, past_item, items)


def lifelong_logit(k: LifelongWorldConfig, quality: np.ndarray, topic_count: np.ndarray,
                   item_count: np.ndarray, antecedent_count: np.ndarray,
                   intent_match: np.ndarray) -> np.ndarray:  # fmt: skip
    """The oracle's logit from counts over some window of the history (module docstring)."""
    return (k.bias + k.quality_weight * quality + k.topic_weight * np.log1p(topic_count)
            + k.repeat_weight * np.log1p(item_count) + k.pair_weight * (antecedent_count > 0)
            + k.intent_weight * intent_match)  # fmt: skip


def session_topic(block: EventBlock, session_events: int) -> np.ndarray:
    """(b,) the most common topic of each user's last ``session_events`` events (-1: none)."""
    out = np.full(len(block.lengths), -1, dtype=np.int64)
    if session_events == 0:
        return out
    seen = block.window(session_events)
    local, topic = block.local_user[seen], block.topics[seen]
    if not len(local):
        return out
    n_topics = int(block.topics.max()) + 1
    codes, counts = np.unique(local * n_topics + topic, return_counts=True)
    # per user, the code with the highest count (ties: the smallest topic)
    order = np.lexsort((codes, -counts, codes // n_topics))
    users = codes[order] // n_topics
    firsts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    out[users[firsts]] = codes[order][firsts] % n_topics
    return out


def generate_lifelong_impressions(cfg: GeneratorConfig, world: LifelongWorld,
                                  block: EventBlock, traits: UserTraits) -> pa.Table:  # fmt: skip
    k = cfg.lifelong
    users = np.arange(block.first_user, block.first_user + len(block.lengths))
    rng = np.random.default_rng([cfg.seed, 13, block.first_user])
    per_user = impressions_per_user(cfg, block.lengths)
    user_of = np.repeat(users, per_user)
    local = user_of - block.first_user
    items = _lifelong_candidates(cfg, world, block, traits, local, rng)
    topics = world.item_topic[items]
    ts = _epoch_us(cfg.cutoff) + rng.integers(0, cfg.impression_days * MICROS_PER_DAY,
                                              len(user_of))  # fmt: skip
    elapsed = (ts - _epoch_us(cfg.cutoff)) / (cfg.impression_days * MICROS_PER_DAY)
    quality = world.item_quality[items] + k.drift * elapsed * world.quality_drift[items]
    zeros = np.zeros(len(items))

    def prob(last: int | None) -> np.ndarray:
        seen = block.window(last)
        lu = block.local_user[seen]
        topic_counts = PairCounts(lu, block.topics[seen], k.n_topics)
        item_counts = PairCounts(lu, block.items[seen], cfg.n_items)
        window = EventBlock(block.first_user, np.bincount(lu, minlength=len(users)),
                            block.user_of_event[seen], block.items[seen], block.topics[seen])  # fmt: skip
        intent = session_topic(window, k.session_events)[local]
        return _sigmoid(lifelong_logit(
            k, quality, topic_counts.lookup(local, topics), item_counts.lookup(local, items),
            item_counts.lookup(local, world.antecedent[items]), (intent == topics) & (intent >= 0),
        ))  # fmt: skip

    oracle = {"oracle_prob": prob(None),
              "oracle_prob_blind": _sigmoid(lifelong_logit(k, quality, zeros, zeros, zeros,
                                                           zeros))}  # fmt: skip
    oracle.update({name: prob(last) for name, last in ORACLE_WINDOWS.items()})
    label = (rng.random(len(user_of)) < oracle["oracle_prob"]).astype(np.int8)
    return _impressions_table(cfg, user_of, per_user, items, world.topic_category[topics], ts, label,
                              oracle)  # fmt: skip


def generate(cfg: GeneratorConfig) -> Iterator[tuple[pa.Table, pa.Table]]:
    """Yield (events, impressions) per block of users."""
    if cfg.regime == "lifelong":
        lifelong = build_lifelong_world(cfg)
        for events, block, traits in generate_lifelong_blocks(cfg, lifelong):
            yield events, generate_lifelong_impressions(cfg, lifelong, block, traits)
        return
    world = build_world(cfg)
    for events, block in generate_event_blocks(cfg, world):
        yield events, generate_impressions(cfg, world, block)
