"""The one place configuration lives.

A profile is a YAML file: a name for one in ``conf/``, or the path of one anywhere
(``path/to/mine.yaml``: data of one's own without editing the repo). Every profile other
than ``local`` is laid over ``conf/local.yaml``, and environment variables
``VISTA__<SECTION>__<FIELD>`` are laid over that. The result is validated here, before any work starts, so a bad value
fails with the field's dotted name and its allowed range.

Long because it is the one typed configuration: every setting with its range, its default
and why, in the one place that readers and the validator both read; split, the settings
a profile sets together would be scattered.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_serializer,
    model_validator,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = PROJECT_ROOT / "conf"
ENV_PREFIX = "VISTA__"


# the longest span in days any setting may hold: a sanity bound (a century), not a policy;
# real data sets span decades, and the data-dependent checks say what one needs
MAX_DAYS = 36_500


class ConfigError(ValueError):
    """A configuration value is missing, malformed or out of range."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclasses.dataclass(frozen=True)
class TableLocation:
    """A Delta table in object storage: its URI and the delta-rs storage options that
    reach it (a table on local disk is a plain Path)."""

    uri: str
    storage_options: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def __truediv__(self, name: str) -> TableLocation:
        return dataclasses.replace(self, uri=f"{self.uri.rstrip('/')}/{name}")

    def __str__(self) -> str:
        return self.uri

    @property
    def name(self) -> str:
        """The last part of the URI: the table's name."""
        return self.uri.rstrip("/").rsplit("/", 1)[-1]


# object stores that delta-rs reaches by URI (Spark needs the matching Hadoop connector)
LAKE_URI = r"^(s3|s3a|gs|az|abfs|abfss)://[^/\s]+(/\S*)?$"
SECRET_OPTION = re.compile(r"secret|token|password|sas|_key$", re.IGNORECASE)


def _option_text(value: Any) -> Any:
    # YAML and VISTA__ variables turn `true` into a bool; object_store wants the text
    return str(value).lower() if isinstance(value, bool) else value


def _lake_location(value: Any) -> Any:
    """An object-store URI stays text (a Path would fold its //), anything else is a Path."""
    if not isinstance(value, str):
        return value
    if "://" not in value:
        return Path(value)
    if not re.match(LAKE_URI, value):
        raise ValueError("must be a folder or a URI like s3://bucket/prefix "
                         "(schemes: s3, s3a, gs, az, abfs, abfss)")  # fmt: skip
    return value


class PathsConfig(_Section):
    """Where state, the lake and reports live (relative paths are from the project root)."""

    state: Path = Field(Path(".state"), description="local state: Airflow, Feast, GX")
    # a folder, or an object-store URI such as s3://bucket/lake (conf/s3.yaml, infra/s3)
    lake: Annotated[Path | str, BeforeValidator(_lake_location)] = Field(
        Path(".state/lake"), description="root of the Delta tables"
    )
    reports: Path = Field(Path("reports"), description="run reports, one folder per run")
    # delta-rs storage options for a lake in object storage (endpoint, region, ...); keys
    # are case-insensitive. Keep secrets out of conf/: delta-rs also reads AWS_* variables
    # (or an instance role), and VISTA__PATHS__STORAGE_OPTIONS__<KEY> sets any one of them
    storage_options: dict[str, Annotated[str, BeforeValidator(_option_text)]] = Field(
        default_factory=dict
    )

    def resolved(self, root: Path) -> PathsConfig:
        """These paths with every relative one made absolute under ``root`` (URIs kept)."""

        def absolute(p: Path | str) -> Path | str:
            return p if isinstance(p, str) or p.is_absolute() else (root / p).resolve()

        return self.model_copy(
            update={"state": absolute(self.state), "lake": absolute(self.lake),
                    "reports": absolute(self.reports)}
        )  # fmt: skip

    def table(self, name: str) -> Path | TableLocation:
        """The location of Delta table ``name`` (``vista.core.names``) in the lake."""
        if isinstance(self.lake, Path):
            return self.lake / name
        return TableLocation(self.lake, self.storage_options) / name

    @field_serializer("storage_options")
    def _without_secrets(self, options: dict[str, str]) -> dict[str, str]:
        # a dumped config is printed and kept in reports; secrets are not
        return {k: "***" if SECRET_OPTION.search(k) else v for k, v in options.items()}


class SparkConfig(_Section):
    """The Spark session the jobs run in: master, partitions, memory, extra settings."""

    # local[N] (embedded), spark://host:port (standalone: conf/cluster.yaml) or
    # k8s://https://host:port (infra/spark); the jobs are the same for all three
    master: str = Field("local[2]", description="Spark master URL")
    shuffle_partitions: Annotated[int, Field(ge=1, le=100_000)] = 4
    driver_memory: str = Field("4g", pattern=r"^\d+[kmgt]$")
    # per executor on a cluster; local mode has no executors and ignores both
    executor_memory: str = Field("1g", pattern=r"^\d+[kmgt]$")
    executor_cores: Annotated[int, Field(ge=1, le=256)] = 1
    arrow_batch_rows: Annotated[int, Field(ge=1, le=1_000_000)] = 64
    # bounds a UDF batch when rows are 1M-event histories (~24 MB each)
    arrow_batch_bytes: Annotated[int, Field(ge=2**20, le=2**34)] = 256 * 2**20
    # any other Spark property (e.g. spark.kubernetes.container.image), set last; keys are
    # case-sensitive, so set them in a profile rather than through VISTA__ variables
    conf: dict[str, str] = Field(default_factory=dict)


class LifelongWorldConfig(_Section):
    """The ``lifelong`` regime's knobs (sources/synthetic.py, docs/WORLDS.md). Every
    component of the oracle's logit has a weight here; 0 switches it off. These values
    were fixed, and written down in docs/WORLDS.md, before any model was judged on them."""

    # fine-grained interests: latent topics (categories are coarser groups of topics)
    n_topics: Annotated[int, Field(ge=2, le=1_000_000)] = 400
    interests_per_user: Annotated[int, Field(ge=1, le=256)] = 24
    # interest weights ~ 1 / rank^zipf: rare interests need long histories to be seen
    interest_zipf: Annotated[float, Field(ge=0, le=4)] = 1.0
    # share of a user's interests active only early in the timeline (then silent)
    dormant_share: Annotated[float, Field(ge=0, le=1)] = 0.35
    # logit weight of log1p(lifetime events in the candidate's topic)
    topic_weight: Annotated[float, Field(ge=0, le=10)] = 0.4
    # item-level memory: share of events that re-consume one of the user's favourite
    # items of the topic, and the logit weight of log1p(times the candidate was consumed)
    repeat_rate: Annotated[float, Field(ge=0, le=1)] = 0.3
    favourites_per_topic: Annotated[int, Field(ge=1, le=1000)] = 4
    repeat_weight: Annotated[float, Field(ge=0, le=10)] = 0.8
    # long-range pairs: the candidate's partner item was ever consumed
    pair_weight: Annotated[float, Field(ge=0, le=10)] = 1.0
    # short-term intent: the last session's topic (all of its events)
    session_events: Annotated[int, Field(ge=0, le=100)] = 20
    intent_weight: Annotated[float, Field(ge=0, le=10)] = 1.5
    # item quality drifts linearly over the impression window: q + drift * t * delta
    quality_weight: Annotated[float, Field(ge=0, le=10)] = 0.5
    drift: Annotated[float, Field(ge=0, le=10)] = 0.5
    bias: Annotated[float, Field(ge=-20, le=20)] = -3.0
    # where impression candidates come from (the rest: uniformly random topics)
    candidates_active: Annotated[float, Field(ge=0, le=1)] = 0.2
    candidates_dormant: Annotated[float, Field(ge=0, le=1)] = 0.2
    candidates_repeat: Annotated[float, Field(ge=0, le=1)] = 0.15
    candidates_pair: Annotated[float, Field(ge=0, le=1)] = 0.1
    candidates_intent: Annotated[float, Field(ge=0, le=1)] = 0.1

    @model_validator(mode="after")
    def _shares_fit(self) -> LifelongWorldConfig:
        shares = (self.candidates_active + self.candidates_dormant + self.candidates_repeat
                  + self.candidates_pair + self.candidates_intent)  # fmt: skip
        if shares > 1:
            raise ValueError(f"candidates_* shares add up to {shares:.3f}; they must be <= 1")
        return self


class GeneratorConfig(_Section):
    """Synthetic lifelong data with a known click probability (the oracle).

    ``regime``: ``counts`` (the click depends on lifetime events in the candidate's
    cluster, saturating after a few dozen) or ``lifelong`` (dormant interests that return,
    item-level memory, many fine-grained interests, a short-term intent, drift between the
    training and evaluation windows; knobs in ``lifelong``)."""

    regime: Literal["counts", "lifelong"] = "counts"
    lifelong: LifelongWorldConfig = LifelongWorldConfig()
    n_users: Annotated[int, Field(ge=10, le=10_000_000)] = 2000
    n_items: Annotated[int, Field(ge=20, le=100_000_000)] = 5000
    n_clusters: Annotated[int, Field(ge=2, le=100_000)] = 50
    interests_per_user: Annotated[int, Field(ge=1, le=32)] = 6
    min_history: Annotated[int, Field(ge=1, le=1_000_000)] = 20
    max_history: Annotated[int, Field(ge=1, le=1_000_000)] = 50_000
    activity_alpha: Annotated[float, Field(gt=0.1, le=10.0)] = 1.1
    heavy_users: Annotated[int, Field(ge=0, le=1000)] = 2
    history_days: Annotated[int, Field(ge=1, le=3650)] = 120
    impression_days: Annotated[int, Field(ge=2, le=60)] = 3
    impressions_per_user: Annotated[int, Field(ge=1, le=10_000)] = 24
    # impressions of each user with at least 1,000 events (0: impressions_per_user), so the
    # long-history buckets hold enough evaluation rows without generating more users
    long_user_impressions: Annotated[int, Field(ge=0, le=100_000)] = 0
    start_date: dt.date = dt.date(2026, 7, 1)
    seed: Annotated[int, Field(ge=0)] = 7

    @model_validator(mode="after")
    def _ranges_consistent(self) -> GeneratorConfig:
        if self.min_history > self.max_history:
            raise ValueError(
                f"min_history ({self.min_history}) must be <= max_history ({self.max_history})"
            )
        if self.n_clusters > self.n_items:
            raise ValueError(f"n_clusters ({self.n_clusters}) must be <= n_items ({self.n_items})")
        if self.heavy_users > self.n_users:
            raise ValueError(f"heavy_users ({self.heavy_users}) must be <= n_users")
        topics = self.lifelong.n_topics
        if self.regime == "lifelong" and not self.n_clusters <= topics <= self.n_items:
            raise ValueError(f"lifelong.n_topics ({topics}) must lie between n_clusters "
                             f"({self.n_clusters}) and n_items ({self.n_items}): categories "
                             "group topics, topics group items")  # fmt: skip
        return self

    @property
    def cutoff(self) -> dt.datetime:
        """End of the event history; impressions start here."""
        start = dt.datetime.combine(self.start_date, dt.time(), tzinfo=dt.UTC)
        return start + dt.timedelta(days=self.history_days)


class HistoriesConfig(_Section):
    """How long a stored history may be: older events beyond ``max_history`` are dropped."""

    max_history: Annotated[int, Field(ge=1, le=10_000_000)] = 1_000_000


class SummarizerConfig(_Section):
    """Sizes of the VISTA summarizer (paper: 128 seeds, 3 layers, dim 256).

    ``mode``: ``memory`` (K seeds read one additive, per-head time-decayed QLA state of the
    history; the summary keeps magnitudes, and the state can be refreshed with new events
    alone) or ``bidirectional`` (the seeds and history attend together through
    ``n_layers`` QLA layers with RMS-normalised heads, as first built)."""

    mode: Literal["memory", "bidirectional"] = "bidirectional"
    # memory mode: how a summary keeps the scale of a sum over N events: log (signed
    # log1p of each value: counts and proportions), rms (per-head RMS norm: proportions
    # only, as the bidirectional layers), mean (divided by N: proportions only)
    magnitude: Literal["log", "rms", "mean"] = "log"
    # memory mode: each head's recency, as a half-life in days (0: no decay, the lifetime
    # sum); one value for all heads or one per head
    head_half_life_days: list[Annotated[float, Field(ge=0, le=36_500)]] = [0.0]
    # memory mode, training: histories longer than train_max_events keep their most recent
    # train_recent_events exactly and a uniform sample of the rest, weighted so that the
    # state is an unbiased estimate of the whole history's (summaries see real magnitudes)
    train_recent_events: Annotated[int, Field(ge=0, le=10_000_000)] = 128
    # how the source model's head (and the ranker) pools the K tokens for a candidate:
    # softmax attention, or sum (unnormalised linear weights: reads the state linearly)
    head_pooling: Literal["softmax", "sum", "slot"] = "softmax"
    # memory mode: how an event picks the seed tokens it is written into. silu: phi(q_k) .
    # phi(k_i) (QLA's feature map, unnormalised); softmax: a distribution over the K seeds
    # (a soft, learned bucketing of events, as TWIN-V2's clusters; read back by "slot")
    address: Literal["silu", "softmax"] = "silu"
    # slot pooling: the head (and the VISTA ranker) also gets, per head, the dot product
    # of the candidate's value with its slot read, i.e. how much of this very item the
    # user's memory holds (models/attention.slot_match): item-level memory, read exactly
    slot_match: bool = False
    # memory mode: the last sketch_heads heads are an item sketch (models/sketch.py): each
    # item is written, as a fixed random +-1 signature, into one slot picked by a hash of
    # its id, and a candidate reads its own count back, whatever items share its topic
    # (which a learned address files together); their half-lives are those heads'
    sketch_heads: Annotated[int, Field(ge=0, le=63)] = 0
    n_seeds: Annotated[int, Field(ge=1, le=4096)] = 16
    dim: Annotated[int, Field(ge=4, le=4096)] = 32
    n_layers: Annotated[int, Field(ge=1, le=32)] = 2
    n_heads: Annotated[int, Field(ge=1, le=64)] = 2
    vocab_size: Annotated[int, Field(ge=2, le=100_000_000)] = 8192
    category_vocab_size: Annotated[int, Field(ge=2, le=10_000_000)] = 1024
    age_buckets: Annotated[int, Field(ge=2, le=256)] = 16
    chunk_size: Annotated[int, Field(ge=16, le=10_000_000)] = 8192
    train_steps: Annotated[int, Field(ge=1, le=10_000_000)] = 300
    train_users_per_step: Annotated[int, Field(ge=1, le=100_000)] = 32
    train_max_events: Annotated[int, Field(ge=8, le=10_000_000)] = 2048
    lr: Annotated[float, Field(gt=0, le=1.0)] = 3e-3
    weight_decay: Annotated[float, Field(ge=0, le=10.0)] = 1e-2
    event_dropout: Annotated[float, Field(ge=0, lt=1)] = 0.2
    # weight of the next-event reconstruction loss (paper: 1.0); 0 turns it off
    recon_weight: Annotated[float, Field(ge=0, le=100.0)] = 1.0
    # events per step whose next event is reconstructed (a random window of the history)
    recon_window: Annotated[int, Field(ge=2, le=1_000_000)] = 128
    validation_share: Annotated[float, Field(gt=0, lt=1)] = 0.1
    # held-out users actually scored at each evaluation (a fixed random sample of them)
    validation_max_users: Annotated[int, Field(ge=1, le=1_000_000)] = 1024
    eval_every: Annotated[int, Field(ge=1, le=1_000_000)] = 50
    checkpoint_every: Annotated[int, Field(ge=1, le=1_000_000)] = 200
    seed: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _heads_divide_dim(self) -> SummarizerConfig:
        if self.dim % self.n_heads:
            raise ValueError(f"dim ({self.dim}) must be divisible by n_heads ({self.n_heads})")
        if len(self.head_half_life_days) not in (1, self.n_heads):
            raise ValueError(f"head_half_life_days has {len(self.head_half_life_days)} values:"
                             f" give 1 or n_heads ({self.n_heads})")  # fmt: skip
        if self.slot_match and (self.mode, self.head_pooling) != ("memory", "slot"):
            raise ValueError("slot_match needs mode: memory and head_pooling: slot (it reads"
                             f" the candidate's slots), got mode {self.mode!r}, head_pooling"
                             f" {self.head_pooling!r}")  # fmt: skip
        slot_memory = (self.mode, self.address, self.head_pooling) == ("memory", "softmax", "slot")
        if self.sketch_heads and not slot_memory:
            raise ValueError("sketch_heads needs mode: memory, address: softmax and "
                             f"head_pooling: slot (its heads are slots), got mode {self.mode!r},"
                             f" address {self.address!r}, head_pooling {self.head_pooling!r}")  # fmt: skip
        if self.sketch_heads >= self.n_heads:
            raise ValueError(f"sketch_heads ({self.sketch_heads}) must be < n_heads "
                             f"({self.n_heads}): at least one head is learned")  # fmt: skip
        if self.sketch_heads and not self.slot_match:
            raise ValueError("sketch_heads needs slot_match: true (the sketch is read by "
                             "matching the candidate's signature)")  # fmt: skip
        if self.train_recent_events >= self.train_max_events:
            raise ValueError(f"train_recent_events ({self.train_recent_events}) must be < "
                             f"train_max_events ({self.train_max_events})")  # fmt: skip
        return self

    def half_lives(self) -> list[float]:
        """One half-life (days, 0: none) per head."""
        values = self.head_half_life_days
        return values * self.n_heads if len(values) == 1 else list(values)


class RankerConfig(_Section):
    """How rankers are trained and evaluated: epochs, batches, the variants and seeds, and
    what each variant reads."""

    epochs: Annotated[int, Field(ge=1, le=1000)] = 30
    patience: Annotated[int, Field(ge=1, le=1000)] = 3
    batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 512
    lr: Annotated[float, Field(gt=0, le=1.0)] = 3e-3
    weight_decay: Annotated[float, Field(ge=0, le=10.0)] = 1e-2
    validation_share: Annotated[float, Field(gt=0, lt=1)] = 0.1
    dim: Annotated[int, Field(ge=4, le=4096)] = 32
    # impression days (days with impressions) evaluated: data spanning years may need more
    # than a year of them (vista/state.py windows_problem says how many a data set allows)
    eval_days: Annotated[int, Field(ge=1, le=MAX_DAYS)] = 1
    seed: Annotated[int, Field(ge=0)] = 0
    # the evaluation (`vista evaluate-and-report`): which rankers, each trained with this many seeds
    variants: list[Literal["vista", "din_last100", "sim_category", "full_attention", "blind"]] = [
        "blind",
        "vista",
        "din_last100",
        "sim_category",
        "full_attention",
    ]
    seeds: Annotated[int, Field(ge=1, le=20)] = 3
    # vista only: the last R raw items the candidate attends to beside the summary tokens
    recent_items: Annotated[int, Field(ge=0, le=10_000)] = 0
    # every variant's item and category embeddings start from the frozen summarizer's, so
    # candidates meet the summary in the space it was made in (same for all: fair)
    init_from_summarizer: bool = True
    # vista with an item sketch (summarizer.sketch_heads): beside each sketch head's count
    # of the candidate, the RMS of its slot, so a count in a crowded slot weighs less
    sketch_energy: bool = True
    # each variant trains once per pooling it may use (models/ranker/spec.py POOLING_CHOICES)
    # on the first seed and keeps the one with the lower validation loss for all seeds
    choose_pooling: bool = True
    # the longest raw history full attention reads (the stored tail; what fits in memory)
    full_attention_length: Annotated[int, Field(ge=100, le=1_000_000)] = 2048
    # serving cost is measured for one user with each of these history lengths
    cost_history_lengths: list[Annotated[int, Field(ge=1, le=10_000_000)]] = [
        100,
        1_000,
        10_000,
        100_000,
        1_000_000,
    ]


class TargetConfig(_Section):
    """A claim the report checks and says, met or missed, with its interval: ``model``'s
    AUC minus ``versus``'s is at least ``margin`` on each of ``buckets`` (``versus``
    ``best_raw``: the best raw-history ranker of that bucket; ``headroom``: the model's
    headroom captured, (AUC - blind) / (oracle - blind), is at least ``margin``)."""

    model: Literal["vista", "din_last100", "sim_category", "full_attention", "blind"] = "vista"
    versus: Literal["din_last100", "sim_category", "full_attention", "blind", "best_raw",
                    "headroom"]  # fmt: skip
    buckets: list[Literal["all", "0 (cold start)", "1-100", "101-1k", "1k-10k", "10k-100k",
                          ">100k"]] = ["all"]  # fmt: skip
    margin: Annotated[float, Field(ge=-1, le=1)] = 0.0
    # met as long as the interval reaches the margin (the data cannot say it falls short),
    # for targets of the form "at least X within the interval"
    within_interval: bool = False


class EvaluationConfig(_Section):
    """How model comparisons are tested (`vista evaluate-and-report`, `vista ablate`): a paired
    bootstrap over users, whose percentile interval decides "beats" and "trails"."""

    # draws of the users with replacement: more give steadier interval ends, at a cost
    # linear in draws x rows x (models x seeds)
    resamples: Annotated[int, Field(ge=100, le=100_000)] = 1000
    confidence: Annotated[float, Field(ge=0.5, lt=1)] = 0.95
    seed: Annotated[int, Field(ge=0)] = 0
    # a bucket with fewer users gets estimates but no interval: a percentile bootstrap
    # over a handful of users understates the uncertainty
    min_users: Annotated[int, Field(ge=2, le=1_000_000)] = 20
    # what the report must say is met or missed (a profile states its product targets)
    targets: list[TargetConfig] = []


class FeaturesConfig(_Section):
    """Feast: how far back to materialize, how old a summary may be (ttl), the summary
    codec and the training-set checks."""

    materialize_days: Annotated[int, Field(ge=1, le=MAX_DAYS)] = 30
    # a summary older than this is not joined or served: the refresh cadence must beat it.
    # With a fixed data set it must reach from the snapshot to the last impression, which
    # for decades of data is more than ten years (the training run's error says how many)
    ttl_days: Annotated[int, Field(ge=1, le=MAX_DAYS)] = 14
    # how summary tokens are stored: int8 + per-token scale (4x smaller than float32),
    # bf16 (2x), or float32 (lossless); see vista/core/summary_codec.py
    summary_codec: Literal["int8", "bf16", "float32"] = "int8"
    # the training-set suite fails below this share of impressions with a summary
    min_summary_coverage: Annotated[float, Field(ge=0, le=1)] = 0.5
    # the drift check warns when a summary statistic moves more than this share
    max_summary_drift: Annotated[float, Field(gt=0)] = 0.5
    # where served features live: sqlite (a file under paths.state, no service to run) or
    # redis (shared by every serving replica; conf/redis.yaml, infra/redis/README.md)
    online_store: Literal["sqlite", "redis"] = "sqlite"
    # Feast's form: host:port[,host:port...][,db=0][,ssl=true][,password=${VAR}]; Feast reads
    # ${VAR} from the environment when it loads the store, so secrets stay out of conf/
    redis_connection_string: str = Field(
        "localhost:6379", pattern=r"^[^\s,=:]+:\d+(,[^\s,=:]+:\d+)*(,[^\s,=]+=[^\s,]+)*$"
    )
    # redis_cluster: every host:port in the connection string is a startup node
    redis_type: Literal["redis", "redis_cluster"] = "redis"

    @field_serializer("redis_connection_string")
    def _without_redis_password(self, connection: str) -> str:
        # a dumped config is printed and kept in reports; a literal password is not
        # (a ${VAR} placeholder is kept: it names the variable, not the secret)
        return re.sub(r"(password=)(?!\$\{)[^,]*", r"\1***", connection)


class ServingConfig(_Section):
    """`vista serve`: what the scoring service accepts, and how it answers for a user whose
    stored summary is older than ``features.ttl_days``."""

    # a request body over this is refused with 413 before it is parsed, whether the request
    # declares its length or streams it in chunks. 1 MiB holds the largest valid request
    # (MAX_CANDIDATES = 10,000 candidates with 19-digit ids is ~0.65 MB of JSON) and bounds
    # what one request can make the service read, parse and hold
    max_body_bytes: Annotated[int, Field(ge=1024, le=2**30)] = 2**20
    # a summary older than features.ttl_days is answered as "stale". cold_start (the
    # default) scores the user as one without a summary: the training join never pairs an
    # impression with a summary older than the ttl (Feast drops it offline), so the ranker
    # has never seen one; and a summary that stopped being refreshed usually means its
    # pipeline broke. score reads it anyway, for when late refreshes are known to be benign
    stale_summaries: Literal["cold_start", "score"] = "cold_start"


class SnapshotsConfig(_Section):
    """When snapshots are taken: every ``every_hours`` hours from 00:00 UTC (24: once a
    day, the partition values stay plain dates). The paper refreshes every 2 hours."""

    every_hours: Literal[1, 2, 3, 4, 6, 8, 12, 24] = 24
    # the ingest DAG triggers itself on the cadence (its logical date is the snapshot);
    # off for the fixed-in-time synthetic profiles, whose data ends at one cutoff.
    # $VISTA_INGEST_SCHEDULE (a cron or preset, or 'none') overrides it
    scheduled: bool = False
    # memory mode: users with at least this many events keep their summarizer state
    # (user_summary_states), so the next snapshot folds only their new events. Below it a
    # history costs less to re-read than its state (K x D fp32) costs to store; 0 keeps
    # every user's state
    state_min_events: Annotated[int, Field(ge=0, le=1_000_000_000)] = 1024

    @property
    def cron(self) -> str:
        """The ingest DAG's schedule for this cadence."""
        return "@daily" if self.every_hours == 24 else f"0 */{self.every_hours} * * *"


class AirflowConfig(_Section):
    """The Airflow that `vista dag-test` and `vista airflow-ui` start: where its metadata
    lives and how many tasks run at once. On Kubernetes the Helm chart sets these
    instead (infra/helm/airflow/values.yaml)."""

    # the only executor the platform starts itself (Airflow 3 runs it on SQLite too);
    # Celery or Kubernetes executors belong to the Helm chart, which sets its own
    executor: Literal["LocalExecutor"] = "LocalExecutor"
    # SQLAlchemy URL of the metadata database; null: SQLite at <paths.state>/airflow/airflow.db.
    # Airflow refuses the old postgres:// scheme, so it is caught here. A real password
    # comes from the environment (VISTA__AIRFLOW__SQL_ALCHEMY_CONN), never from conf/
    sql_alchemy_conn: (
        Annotated[str, Field(pattern=r"^(postgresql|mysql|sqlite)(\+\w+)?://\S*$")] | None
    ) = None
    # task slots across the installation: each Spark task wants a core, more only queue
    parallelism: Annotated[int, Field(ge=1, le=1024)] = 2
    # the address Airflow's listeners bind to: the API server and UI (`vista airflow-ui`
    # unless --host says otherwise) and the scheduler's health check, written into
    # <paths.state>/airflow/airflow.cfg for anyone running `airflow` on that home. Airflow's
    # own default is 0.0.0.0 (every interface); 0.0.0.0 here to reach them from elsewhere
    listen_host: Annotated[str, Field(pattern=r"^[A-Za-z0-9.:-]+$")] = "127.0.0.1"

    @field_serializer("sql_alchemy_conn")
    def _without_password(self, url: str | None) -> str | None:
        # a dumped config is printed and kept in reports; the password is not
        return url and re.sub(r"(://[^/@:]*:)[^/]*@", r"\1***@", url)


# a non-empty list of event counts (history lengths, needle depths)
EventCounts = Annotated[list[Annotated[int, Field(ge=1, le=10_000_000)]], Field(min_length=1)]


class ProbeConfig(_Section):
    """`vista probe`: linear probes on frozen summaries of sampled probe histories
    (models/probes.py): what a summary of N events still tells about event counts per
    category, planted needle items and the recency of each category."""

    # probe history lengths (events); each is summarized whole and as its last
    # ``baseline_events`` events
    lengths: EventCounts = [
        100,
        1_000,
        10_000,
        100_000,
        1_000_000,
    ]
    # needle depths: depth 1 is the most recent event; each probe history has each depth
    # that fits it at most once
    depths: EventCounts = [
        1,
        10,
        100,
        1_000,
        10_000,
        100_000,
        1_000_000,
    ]
    # probe users per length: ``users``, fewer where that exceeds ``max_events_per_length``
    # events in all, never fewer than ``min_users`` (at ~1-3 s per user at 1M events on a
    # CPU the defaults take 100 users there, 256 below). Every length's probes are fitted
    # on as many users: a training fold of the length with the fewest users
    users: Annotated[int, Field(ge=4, le=100_000)] = 256
    min_users: Annotated[int, Field(ge=4, le=100_000)] = 96
    max_events_per_length: Annotated[int, Field(ge=1_000, le=10_000_000_000)] = 100_000_000
    # the last-N baseline: the same summarizer applied to the last N events only
    baseline_events: Annotated[int, Field(ge=1, le=1_000_000)] = 100
    categories: Annotated[int, Field(ge=1, le=1_000)] = 8  # most frequent categories probed
    needles: Annotated[int, Field(ge=1, le=1_000)] = 4  # needle items, one probe each
    folds: Annotated[int, Field(ge=2, le=100)] = 4  # cross-fitting over probe users
    bootstrap: Annotated[int, Field(ge=10, le=100_000)] = 200  # resamples for the intervals
    min_source_events: Annotated[int, Field(ge=1, le=1_000_000)] = 5
    # events per summarizer call: bounds the padded batch's memory at long lengths
    batch_events: Annotated[int, Field(ge=1_000, le=1_000_000_000)] = 4_000_000
    seed: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _depths_fit_lengths(self) -> ProbeConfig:
        if len(set(self.lengths)) != len(self.lengths):
            raise ValueError(f"lengths must be distinct, got {self.lengths}")
        longest = max(self.lengths)
        beyond = [d for d in self.depths if d > longest]
        if beyond:
            raise ValueError(
                f"depths {beyond} beyond the longest history length {longest}: "
                f"each depth must be in 1..{longest} (the range of probe.lengths)"
            )
        if self.needles > min(self.lengths):
            raise ValueError(
                f"needles ({self.needles}) must be <= the shortest length ({min(self.lengths)})"
            )
        if self.min_users > self.users:
            raise ValueError(f"min_users ({self.min_users}) must be <= users ({self.users})")
        if self.folds > self.min_users:
            raise ValueError(f"folds ({self.folds}) must be <= min_users ({self.min_users})")
        return self


class SourceConfig(_Section):
    """Events of one's own, instead of the synthetic generator: a file, a folder of files,
    a glob or a Delta table; ``{date}`` in the path is the snapshot's date (YYYY-MM-DD),
    ``{snapshot}`` the snapshot (YYYY-MM-DD, or YYYY-MM-DDTHH off midnight)."""

    events_path: Path
    # auto: from the file suffix in any case (.csv/.tsv/.txt/.dat/.inter, .parquet,
    # .jsonl/.json), or delta for a folder with a _delta_log. gzip, bzip2, xz and zstd
    # files are read in every format (told by their first bytes; .gz etc. may follow)
    format: Literal["auto", "csv", "parquet", "jsonl", "delta"] = "csv"
    separator: str = ","
    # platform column -> file column; needs user_id, item_id, timestamp
    columns: dict[str, str]
    # epoch seconds, milliseconds, microseconds or nanoseconds, or ISO 8601 text
    timestamp_unit: Literal["s", "ms", "us", "ns", "iso"] = "s"
    # allowed event types when event_type is mapped (default: view, click, purchase)
    event_types: list[str] | None = None
    # an event later than the ingest time plus this is quarantined as future_timestamp
    max_clock_skew_seconds: Annotated[int, Field(ge=0)] = 3600
    # ids are read exactly from their digits; 10.5, 1e18 and (unless this is true) 10.0
    # are quarantined as id_not_integer. true: a whole decimal (10.0, an export of a
    # float column) is the id 10; a float value counts only below 2**53 (exact)
    integral_decimal_ids: bool = False
    # a file that cannot be read at all (corrupt archive, not Parquet, no header) is
    # always named in the run's summary and recorded in quarantine (unreadable_file).
    # fail: the run then stops and commits no events; skip: the other files go on, and
    # the unreadable one is read again on every run until it is replaced
    unreadable_files: Literal["fail", "skip"] = "fail"
    items_path: Path | None = None
    item_columns: dict[str, str] = Field(default_factory=dict)
    category_first_token: bool = False
    event_type: str = "view"
    label_column: str = "rating"
    label_threshold: float = 4.0
    # The snapshot date (the default as_of). global: events before it are the history,
    # events at or after it the labelled impressions (required). per_user: the held-out
    # events are laid on the days from this date on; null (the default there): the day
    # after the last event that stays history (sources/loaders.py says why)
    cutoff_date: dt.date | None = None
    # global: one cutoff date for everyone. per_user: the last per_user_share of each
    # user's events are that user's impressions, for data whose users are active in
    # different years (a global cutoff leaves most of them without history or without
    # impressions). Trade-offs: sources/loaders.py, conf/movielens-per-user.yaml
    split: Literal["global", "per_user"] = "global"
    # per_user: share of each user's events held out (rounded to whole timestamps, at
    # least one event; the user keeps at least one timestamp of history)
    per_user_share: Annotated[float, Field(gt=0, lt=1)] = 0.2
    # per_user: a user with fewer events than this (or with a single timestamp) is not
    # split; short_users says where their events go, and the ingest counts them
    min_user_events: Annotated[int, Field(ge=2, le=1_000_000)] = 2
    # history: all their events stay history (no labels from them); cold_start: all
    # become impressions with an empty history (the evaluation's cold-start bucket)
    short_users: Literal["history", "cold_start"] = "history"
    # per_user: days from the snapshot over which each user's held-out events are spread
    # in order; the last ranker.eval_days of them are the evaluation days
    per_user_days: Annotated[int, Field(ge=2, le=MAX_DAYS)] = 4

    @model_validator(mode="after")
    def _mapping_complete(self) -> SourceConfig:
        missing = {"user_id", "item_id", "timestamp"} - set(self.columns)
        if missing:
            raise ValueError(f"columns must map {sorted(missing)} to columns of the file")
        if self.items_path is not None and not {"item_id", "category"} <= set(self.item_columns):
            raise ValueError("item_columns must map item_id and category when items_path is set")
        if self.split == "global" and self.cutoff_date is None:
            raise ValueError("cutoff_date is required when split is global (the snapshot date: "
                             "earlier events are the history, later ones the impressions)")  # fmt: skip
        if self.split == "per_user":
            if self.label_column not in self.columns:
                raise ValueError(f"split per_user needs the label column {self.label_column!r} "
                                 "mapped in columns (held-out events become labelled impressions)")  # fmt: skip
            if "{date}" in str(self.events_path) or "{snapshot}" in str(self.events_path):
                raise ValueError("split per_user splits each user's whole history at once; "
                                 "events_path cannot name one snapshot's files with {date} "
                                 "or {snapshot}")  # fmt: skip
        return self

    def resolved(self, root: Path) -> SourceConfig:
        """This source with its relative file paths made absolute under ``root``."""

        def absolute(p: Path | None) -> Path | None:
            return p if p is None or p.is_absolute() else (root / p).resolve()

        return self.model_copy(
            update={"events_path": absolute(self.events_path),
                    "items_path": absolute(self.items_path)}
        )  # fmt: skip


class VistaConfig(_Section):
    """The whole configuration of one profile: every section, validated together."""

    profile: str = "local"
    # the profile's file when --profile named one by path (absolute); None for conf/ names
    profile_file: Path | None = None
    paths: PathsConfig = PathsConfig()
    spark: SparkConfig = SparkConfig()
    generator: GeneratorConfig = GeneratorConfig()
    histories: HistoriesConfig = HistoriesConfig()
    summarizer: SummarizerConfig = SummarizerConfig()
    ranker: RankerConfig = RankerConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    features: FeaturesConfig = FeaturesConfig()
    serving: ServingConfig = ServingConfig()
    snapshots: SnapshotsConfig = SnapshotsConfig()
    airflow: AirflowConfig = AirflowConfig()
    probe: ProbeConfig = ProbeConfig()
    source: SourceConfig | None = None

    @model_validator(mode="after")
    def _per_user_days_fit(self) -> VistaConfig:
        source = self.source
        if source is None or source.split != "per_user":
            return self
        days, eval_days = source.per_user_days, self.ranker.eval_days
        if days <= eval_days:
            raise ValueError(
                f"source.per_user_days={days} must be more than ranker.eval_days={eval_days} "
                f"(some days must be left to train on): set source.per_user_days >= "
                f"{eval_days + 1}"
            )
        # the last held-out events are stamped up to per_user_days after the snapshot; the
        # point-in-time join only sees a summary younger than the ttl
        if days > self.features.ttl_days:
            raise ValueError(
                f"source.per_user_days={days} is longer than features.ttl_days="
                f"{self.features.ttl_days}: the last impressions would find no summary; set "
                f"features.ttl_days >= {days}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """The configuration as JSON-ready values (storage secrets masked), as reports keep it."""
        return self.model_dump(mode="json")

    @property
    def profile_ref(self) -> str:
        """What loads this profile again elsewhere (an Airflow task, a subprocess): its
        file's absolute path, or its name in conf/."""
        return str(self.profile_file) if self.profile_file is not None else self.profile


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path, named: bool = True) -> dict[str, Any]:
    if not path.exists():
        if not named:
            raise ConfigError(f"profile file {path} does not exist")
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"profile file {path} does not exist (known profiles: {known})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level, got {type(data).__name__}")
    return data


def is_profile_file(profile: str) -> bool:
    """A --profile value names a file (anywhere) rather than conf/<name>.yaml."""
    separators = {"/", os.sep, *([os.altsep] if os.altsep else [])}
    return profile.endswith((".yaml", ".yml")) or any(s in profile for s in separators)


# the path-valued settings a profile file may give relative to its own folder
_FILE_PATHS = (("paths", "state"), ("paths", "lake"), ("paths", "reports"),
               ("source", "events_path"), ("source", "items_path"))  # fmt: skip


def _relative_to(data: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A profile file's relative paths taken from its own folder, so that the file and
    the data beside it can live anywhere (conf/ profiles stay relative to the repo)."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for section, key in _FILE_PATHS:
        part = out.get(section)
        value = part.get(key) if isinstance(part, dict) else None
        if isinstance(value, str) and "://" not in value and not Path(value).is_absolute():
            part[key] = str(folder / value)
    return out


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        parts = key[len(ENV_PREFIX) :].lower().split("__")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _env_value(raw)
    return out


def _env_value(raw: str) -> Any:
    """A variable's value read as YAML (numbers, lists, null), or as plain text when it is
    not valid YAML: ``VISTA__SOURCE__SEPARATOR=,`` means the comma, not a parse error."""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def format_validation_error(exc: ValidationError) -> str:
    """One line per failing field: its dotted name, the value given and what is allowed."""
    lines = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(config)"
        got = err.get("input")
        got_text = "" if isinstance(got, dict) else f" = {got!r}"
        lines.append(f"{field}{got_text}: {err['msg']}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def build_config(data: dict[str, Any], root: Path = PROJECT_ROOT) -> VistaConfig:
    """Validate a raw mapping; relative paths are taken relative to ``root``."""
    try:
        cfg = VistaConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    update: dict[str, Any] = {"paths": cfg.paths.resolved(root)}
    if cfg.source is not None:
        update["source"] = cfg.source.resolved(root)
    return cfg.model_copy(update=update)


def load_config(
    profile: str | None = None,
    overrides: dict[str, Any] | None = None,
    conf_dir: Path = CONF_DIR,
    environ: dict[str, str] | None = None,
) -> VistaConfig:
    """Load a profile (default: $VISTA_PROFILE or ``local``), then env, then ``overrides``.

    ``profile`` is a name in ``conf_dir`` or, when it ends in .yaml/.yml or holds a path
    separator, a profile file anywhere: laid over local.yaml the same way, its relative
    paths taken from its own folder, and recorded under its file's stem."""
    environ = dict(os.environ if environ is None else environ)
    profile = profile or environ.get("VISTA_PROFILE", "local")
    data = _read_yaml(conf_dir / "local.yaml")
    profile_file = None
    if is_profile_file(profile):
        profile_file = Path(profile).expanduser().resolve()
        own = _relative_to(_read_yaml(profile_file, named=False), profile_file.parent)
        data, profile = _deep_merge(data, own), profile_file.stem
    elif profile != "local":
        data = _deep_merge(data, _read_yaml(conf_dir / f"{profile}.yaml"))
    data = _deep_merge(data, _env_overrides(environ))
    data = _deep_merge(data, overrides or {})
    data["profile"] = profile
    data["profile_file"] = profile_file
    return build_config(data, root=conf_dir.parent)
