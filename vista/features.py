"""Feast: apply the feature repo, build point-in-time training sets, materialize, serve.

The repo in ``feature_repo/`` is plain Feast (``feast -c feature_repo apply`` works
after ``eval "$(vista env)"``); this module points it at the configured state and
lake folders and calls the same SDK. Its ``feature_store.yaml`` is the embedded default;
the file Feast actually loads is written to ``<state>/feast/feature_store.yaml`` with the
profile's online store (SQLite or Redis), and ``FEAST_FS_YAML_FILE_PATH`` names it.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import sys
from pathlib import Path

import pandas as pd
import yaml

from vista.core.config import PROJECT_ROOT, VistaConfig
from vista.state import current_summarizer

FEATURE_REPO = PROJECT_ROOT / "feature_repo"
FEATURE_SERVICE = "ranker_v1"
EVALUATION_SERVICE = "ranker_evaluation"
SUMMARY_VIEW = "user_summary"  # on-demand view: the stored codes decoded to float32
ENCODED_VIEW = "user_summary_encoded"  # the cache's rows as stored
REPO_MODULES = ("entities", "data_sources", "feature_views", "feature_services")
FS_YAML_ENV = "FEAST_FS_YAML_FILE_PATH"  # where Feast's SDK and CLI look for the yaml


def online_store_settings(cfg: VistaConfig) -> dict[str, str]:
    """The ``online_store`` block of feature_store.yaml that this config selects."""
    features = cfg.features
    if features.online_store == "redis":
        return {
            "type": "redis",
            "redis_type": features.redis_type,
            "connection_string": features.redis_connection_string,
        }
    return {"type": "sqlite", "path": "${VISTA_FEAST_DIR}/online_store.db"}


def feature_store_yaml(cfg: VistaConfig) -> str:
    """feature_repo/feature_store.yaml with this config's online store.

    ${VAR}s are left for Feast to expand when it loads the file, so a Redis password
    given as ${VAR} is read from the environment and never written to disk."""
    settings = yaml.safe_load((FEATURE_REPO / "feature_store.yaml").read_text())
    settings["online_store"] = online_store_settings(cfg)
    header = (
        f"# Written by vista.features for profile {cfg.profile!r} from "
        "feature_repo/feature_store.yaml and features.online_store; edits are overwritten.\n"
    )
    return header + yaml.safe_dump(settings, sort_keys=False)


def write_feature_store_yaml(cfg: VistaConfig) -> Path:
    path = cfg.paths.state / "feast" / "feature_store.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    # replaced whole, so a concurrent task never loads a half-written file
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(feature_store_yaml(cfg))
    partial.chmod(0o600)  # a literal Redis password may be in it
    partial.replace(path)
    return path


def feast_environment(cfg: VistaConfig) -> dict[str, str]:
    """Environment variables that feature_store.yaml and the repo's sources read;
    writes the feature_store.yaml they select and creates the registry folder."""
    fs_yaml = write_feature_store_yaml(cfg)
    try:
        version = current_summarizer(cfg)["version"]
    except FileNotFoundError:  # nothing trained yet: the repo still applies
        version = "none"
    return {
        FS_YAML_ENV: str(fs_yaml),
        "VISTA_FEAST_DIR": str(cfg.paths.state / "feast"),
        "VISTA_LAKE_DIR": str(cfg.paths.lake),
        "VISTA_SUMMARY_TOKENS": str(cfg.summarizer.n_seeds),
        "VISTA_SUMMARY_DIM": str(cfg.summarizer.dim),
        "VISTA_SUMMARY_CODEC": cfg.features.summary_codec,
        "VISTA_SUMMARIZER_VERSION": version,
        "VISTA_FEATURE_TTL_DAYS": str(cfg.features.ttl_days),
        "FEAST_USAGE": "False",
    }


def _use_bundled_duckdb_delta() -> None:
    """DuckDB would download its delta extension at first use; the duckdb-ext-delta
    wheel ships it, so point the DuckDB connection that Feast (through ibis) uses there."""
    import duckdb_ext
    import ibis

    ext_dir = Path(duckdb_ext.__path__[0]) / "extensions"
    ibis.set_backend(ibis.duckdb.connect(extension_directory=str(ext_dir)))


def feature_store(cfg: VistaConfig):
    env = feast_environment(cfg)
    os.environ.update(env)
    from feast import FeatureStore

    _use_bundled_duckdb_delta()
    return FeatureStore(repo_path=str(FEATURE_REPO), fs_yaml_file=Path(env[FS_YAML_ENV]))


def repo_objects(cfg: VistaConfig) -> list:
    """The repo's Feast objects, imported fresh so they see this config's paths."""
    os.environ.update(feast_environment(cfg))
    if str(FEATURE_REPO) not in sys.path:
        sys.path.insert(0, str(FEATURE_REPO))
    modules = []
    for name in REPO_MODULES:
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", "").startswith(str(FEATURE_REPO)):
            modules.append(importlib.reload(module))
        else:
            modules.append(importlib.import_module(name))
    entities, sources, views, services = modules
    return [
        entities.user,
        entities.category,
        sources.user_summaries_source,
        sources.user_history_tail_source,
        sources.user_category_histories_source,
        views.user_summary_encoded,
        views.user_summary,
        views.user_history_tail,
        views.user_category_history,
        services.ranker_v1,
        services.ranker_evaluation,
    ]


def stale_objects(store, objects: list) -> list:
    """Registry objects the repo no longer defines (renamed or removed views, services,
    sources), which `feast apply` would delete and materialize would otherwise still read."""
    wanted = {(type(o).__name__, o.name) for o in objects}
    listed = [
        *store.list_feature_services(),
        *store.list_feature_views(),
        *store.list_on_demand_feature_views(),
        *store.list_data_sources(),
        *store.list_entities(),
    ]
    return [o for o in listed if (type(o).__name__, o.name) not in wanted]


def apply_repo(cfg: VistaConfig):
    """Register the repo's objects, deleting what the repo no longer defines."""
    store = feature_store(cfg)
    objects = repo_objects(cfg)
    store.apply(objects, objects_to_delete=stale_objects(store, objects), partial=False)
    return store


def training_frame(store, entity_df: pd.DataFrame, service: str = FEATURE_SERVICE) -> pd.DataFrame:
    """Point-in-time join: each row sees the newest features stamped at or before it."""
    job = store.get_historical_features(
        entity_df=entity_df, features=store.get_feature_service(service)
    )
    return job.to_df()


def materialize(store, end: dt.datetime, start: dt.datetime | None = None) -> None:
    if start is None:
        store.materialize_incremental(end_date=end)
    else:
        store.materialize(start_date=start, end_date=end)


def online_summaries(store, user_ids: list[int], event_timestamps: bool = False) -> dict[str, list]:
    """Decoded summaries with their row's metadata; ``event_timestamps`` adds
    ``<feature>__ts`` (seconds since the epoch: the snapshot the row was computed at).
    Feast applies a view's ttl offline only: an online read returns a row of any age."""
    features = [f"{SUMMARY_VIEW}:summary"] + [
        f"{ENCODED_VIEW}:{name}" for name in ("history_length", "summarizer_version")
    ]
    response = store.get_online_features(
        features=features, entity_rows=[{"user_id": int(u)} for u in user_ids]
    )
    return response.to_dict(include_event_timestamps=event_timestamps)
