"""The one place configuration lives.

A profile is a YAML file in ``conf/``; every profile other than ``local`` is laid
over ``local.yaml``, and environment variables ``VISTA__<SECTION>__<FIELD>`` are laid
over that. The result is validated here, before any work starts, so a bad value
fails with the field's dotted name and its allowed range.
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

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONF_DIR = PROJECT_ROOT / "conf"
ENV_PREFIX = "VISTA__"


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
        def absolute(p: Path | str) -> Path | str:
            return p if isinstance(p, str) or p.is_absolute() else (root / p).resolve()

        return self.model_copy(
            update={"state": absolute(self.state), "lake": absolute(self.lake),
                    "reports": absolute(self.reports)}
        )  # fmt: skip

    def table(self, name: str) -> Path | TableLocation:
        if isinstance(self.lake, Path):
            return self.lake / name
        return TableLocation(self.lake, self.storage_options) / name

    @field_serializer("storage_options")
    def _without_secrets(self, options: dict[str, str]) -> dict[str, str]:
        # a dumped config is printed and kept in reports; secrets are not
        return {k: "***" if SECRET_OPTION.search(k) else v for k, v in options.items()}


class SparkConfig(_Section):
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


class GeneratorConfig(_Section):
    """Synthetic lifelong data with a known click probability (the oracle)."""

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
        return self

    @property
    def cutoff(self) -> dt.datetime:
        """End of the event history; impressions start here."""
        start = dt.datetime.combine(self.start_date, dt.time(), tzinfo=dt.UTC)
        return start + dt.timedelta(days=self.history_days)


class HistoriesConfig(_Section):
    max_history: Annotated[int, Field(ge=1, le=10_000_000)] = 1_000_000


class SummarizerConfig(_Section):
    """Sizes of the VISTA summarizer (paper: 128 seeds, 3 layers, dim 256)."""

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
        return self


class RankerConfig(_Section):
    epochs: Annotated[int, Field(ge=1, le=1000)] = 30
    patience: Annotated[int, Field(ge=1, le=1000)] = 3
    batch_size: Annotated[int, Field(ge=1, le=1_000_000)] = 512
    lr: Annotated[float, Field(gt=0, le=1.0)] = 3e-3
    weight_decay: Annotated[float, Field(ge=0, le=10.0)] = 1e-2
    validation_share: Annotated[float, Field(gt=0, lt=1)] = 0.1
    dim: Annotated[int, Field(ge=4, le=4096)] = 32
    eval_days: Annotated[int, Field(ge=1, le=365)] = 1
    seed: Annotated[int, Field(ge=0)] = 0
    # the evaluation (`vista report`): which rankers, each trained with this many seeds
    variants: list[Literal["vista", "din_last100", "sim_category", "full_attention"]] = [
        "vista",
        "din_last100",
        "sim_category",
        "full_attention",
    ]
    seeds: Annotated[int, Field(ge=1, le=20)] = 3
    # vista only: the last R raw items the candidate attends to beside the summary tokens
    recent_items: Annotated[int, Field(ge=0, le=10_000)] = 0
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


class FeaturesConfig(_Section):
    materialize_days: Annotated[int, Field(ge=1, le=3650)] = 30
    # a summary older than this is not joined or served: the refresh cadence must beat it
    ttl_days: Annotated[int, Field(ge=1, le=3650)] = 14
    # how summary tokens are stored: int8 + per-token scale (4x smaller than float32),
    # bf16 (2x), or float32 (lossless); see vista/summary_codec.py
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
    a glob or a Delta table; ``{date}`` in the path is the run date (YYYY-MM-DD)."""

    events_path: Path
    # auto: from the file suffix (.csv/.tsv/.inter, .parquet, .jsonl/.json), or delta
    # for a folder with a _delta_log
    format: Literal["auto", "csv", "parquet", "jsonl", "delta"] = "csv"
    separator: str = ","
    # platform column -> file column; needs user_id, item_id, timestamp
    columns: dict[str, str]
    timestamp_unit: Literal["s", "ms", "us", "iso"] = "s"
    # allowed event types when event_type is mapped (default: view, click, purchase)
    event_types: list[str] | None = None
    # an event later than the ingest time plus this is quarantined as future_timestamp
    max_clock_skew_seconds: Annotated[int, Field(ge=0)] = 3600
    items_path: Path | None = None
    item_columns: dict[str, str] = Field(default_factory=dict)
    category_first_token: bool = False
    event_type: str = "view"
    label_column: str = "rating"
    label_threshold: float = 4.0
    cutoff_date: dt.date

    @model_validator(mode="after")
    def _mapping_complete(self) -> SourceConfig:
        missing = {"user_id", "item_id", "timestamp"} - set(self.columns)
        if missing:
            raise ValueError(f"columns must map {sorted(missing)} to columns of the file")
        if self.items_path is not None and not {"item_id", "category"} <= set(self.item_columns):
            raise ValueError("item_columns must map item_id and category when items_path is set")
        return self

    def resolved(self, root: Path) -> SourceConfig:
        def absolute(p: Path | None) -> Path | None:
            return p if p is None or p.is_absolute() else (root / p).resolve()

        return self.model_copy(
            update={"events_path": absolute(self.events_path),
                    "items_path": absolute(self.items_path)}
        )  # fmt: skip


class VistaConfig(_Section):
    profile: str = "local"
    paths: PathsConfig = PathsConfig()
    spark: SparkConfig = SparkConfig()
    generator: GeneratorConfig = GeneratorConfig()
    histories: HistoriesConfig = HistoriesConfig()
    summarizer: SummarizerConfig = SummarizerConfig()
    ranker: RankerConfig = RankerConfig()
    features: FeaturesConfig = FeaturesConfig()
    airflow: AirflowConfig = AirflowConfig()
    probe: ProbeConfig = ProbeConfig()
    source: SourceConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise ConfigError(f"profile file {path} does not exist (known profiles: {known})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level, got {type(data).__name__}")
    return data


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        parts = key[len(ENV_PREFIX) :].lower().split("__")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw)
    return out


def format_validation_error(exc: ValidationError) -> str:
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
    """Load a profile (default: $VISTA_PROFILE or ``local``), then env, then ``overrides``."""
    environ = dict(os.environ if environ is None else environ)
    profile = profile or environ.get("VISTA_PROFILE", "local")
    data = _read_yaml(conf_dir / "local.yaml")
    if profile != "local":
        data = _deep_merge(data, _read_yaml(conf_dir / f"{profile}.yaml"))
    data = _deep_merge(data, _env_overrides(environ))
    data = _deep_merge(data, overrides or {})
    data["profile"] = profile
    return build_config(data, root=conf_dir.parent)
