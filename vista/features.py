"""Feast: apply the feature repo, build point-in-time training sets, materialize, serve.

Configuration reaches Feast as values, never through the environment: ``repo_config``
builds a ``feast.RepoConfig`` from the typed ``VistaConfig`` (registry and online store
under ``<state>/feast/``, DuckDB offline store over the lake's Delta tables), and
``repo_settings`` the ``RepoSettings`` that ``feature_repo.definitions`` turns into the
Feast objects (table locations, the current summarizer version, K x D, codec, ttl).

The plain ``feast`` CLI reads a folder, so ``write_feast_repo`` writes the same two
things into ``<state>/feast/``: ``feature_store.yaml`` (the RepoConfig's settings) and
``vista_feature_repo.py`` (the repo's ``definitions`` called with this profile's values
written in). ``vista feast-repo`` writes it and prints the folder:
``feast -c "$(vista feast-repo)" feature-views list``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from feature_repo.settings import RepoSettings
from vista.core.config import PROJECT_ROOT, VistaConfig
from vista.core.errors import MissingStateError
from vista.core.names import CATEGORY_HISTORIES, HISTORY_TAIL
from vista.state import current_summarizer, summaries_path

FEATURE_REPO = PROJECT_ROOT / "feature_repo"  # the definitions (plain Feast, in Python)
FEATURE_SERVICE = "ranker_v1"
EVALUATION_SERVICE = "ranker_evaluation"
SUMMARY_VIEW = "user_summary"  # on-demand view: the stored codes decoded to float32
ENCODED_VIEW = "user_summary_encoded"  # the cache's rows as stored
CLI_REPO_MODULE = "vista_feature_repo.py"  # the generated definitions file of the CLI repo


def feast_dir(cfg: VistaConfig) -> Path:
    """``<state>/feast``: registry, SQLite online store, and the CLI's generated repo."""
    return cfg.paths.state / "feast"


def online_store_settings(cfg: VistaConfig) -> dict[str, str]:
    """The ``online_store`` block that this config selects (SQLite or Redis).

    A Redis connection string may hold ``${VAR}`` (a password): written as is, Feast
    expands it from the environment of the process that loads the file."""
    features = cfg.features
    if features.online_store == "redis":
        return {
            "type": "redis",
            "redis_type": features.redis_type,
            "connection_string": features.redis_connection_string,
        }
    return {"type": "sqlite", "path": str(feast_dir(cfg) / "online_store.db")}


def feature_store_settings(cfg: VistaConfig) -> dict[str, Any]:
    """feature_store.yaml's content for this config: local registry, DuckDB offline store
    over Delta, the chosen online store; absolute paths."""
    return {
        "project": "vista",
        "provider": "local",
        "registry": str(feast_dir(cfg) / "registry.db"),
        "offline_store": {"type": "duckdb"},
        "online_store": online_store_settings(cfg),
        "entity_key_serialization_version": 3,
        "auth": {"type": "no_auth"},
    }


def repo_config(cfg: VistaConfig):
    """The ``feast.RepoConfig`` of this config (what ``feature_store.yaml`` would load to).

    ``${VAR}``s (a Redis password) are expanded here, when the store is opened, as
    Feast does when it loads the yaml."""
    from feast.repo_config import RepoConfig

    expanded = yaml.safe_load(os.path.expandvars(yaml.safe_dump(feature_store_settings(cfg))))
    config = RepoConfig(**expanded)
    config.repo_path = feast_dir(cfg)
    return config


def repo_settings(cfg: VistaConfig) -> RepoSettings:
    """The values the repo's definitions take: table locations, the current summarizer
    version (``none`` before one is trained: the repo still applies), K x D, codec, ttl."""
    try:
        version = current_summarizer(cfg)["version"]
    except MissingStateError:
        version = "none"
    return RepoSettings(
        user_summaries=str(summaries_path(cfg, version)),
        user_history_tail=str(cfg.paths.table(HISTORY_TAIL)),
        user_category_histories=str(cfg.paths.table(CATEGORY_HISTORIES)),
        summarizer_version=version,
        n_tokens=cfg.summarizer.n_seeds,
        token_dim=cfg.summarizer.dim,
        codec=cfg.features.summary_codec,
        ttl_days=cfg.features.ttl_days,
    )


def repo_objects(cfg: VistaConfig) -> list:
    """The repo's Feast objects for this config, built fresh (entities, sources, views,
    services)."""
    from feature_repo.definitions import definitions

    return list(definitions(repo_settings(cfg)).values())


def cli_repo_module(cfg: VistaConfig, settings: RepoSettings) -> str:
    """Source of the generated ``vista_feature_repo.py``: the repo's definitions with this
    profile's settings written in, one module-level name per object (Feast's CLI collects
    the Feast objects it finds in a repo's modules)."""
    from feature_repo.definitions import definitions

    names = list(definitions(settings))
    fields = "".join(f"    {f.name}={getattr(settings, f.name)!r},\n"
                     for f in dataclasses.fields(settings))  # fmt: skip
    return (
        f'"""Written by vista.features for profile {cfg.profile!r} (`vista feast-repo`); '
        "edits are overwritten.\n\nThe Feast objects of feature_repo/ with this profile's "
        'settings, for the plain `feast` CLI."""\n\n'
        "import sys\n\n"
        "# the project that wrote this file, so its feature_repo and vista are the ones read\n"
        f"sys.path.insert(0, {str(PROJECT_ROOT)!r})\n\n"
        "from feature_repo.definitions import definitions  # noqa: E402\n"
        "from feature_repo.settings import RepoSettings  # noqa: E402\n\n"
        f"_objects = definitions(RepoSettings(\n{fields}))\n"
        + "".join(f"{name} = _objects[{name!r}]\n" for name in names)
    )


def _replace_file(path: Path, text: str, mode: int = 0o644) -> None:
    # replaced whole, so a concurrent task never loads a half-written file
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(text)
    partial.chmod(mode)
    partial.replace(path)


def write_feast_repo(cfg: VistaConfig) -> Path:
    """Write the Feast repo that the plain ``feast`` CLI reads for this profile into
    ``<state>/feast/`` and return that folder: ``feature_store.yaml`` (the settings of
    ``repo_config``, ``${VAR}``s left for Feast to expand) and ``vista_feature_repo.py``."""
    folder = feast_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Written by vista.features for profile {cfg.profile!r} from its configuration\n"
        "# (`vista feast-repo`); edits are overwritten.\n"
    )
    text = header + yaml.safe_dump(feature_store_settings(cfg), sort_keys=False)
    _replace_file(folder / "feature_store.yaml", text, 0o600)  # a literal Redis password
    _replace_file(folder / CLI_REPO_MODULE, cli_repo_module(cfg, repo_settings(cfg)))
    return folder


def _use_bundled_duckdb_delta() -> None:
    """DuckDB would download its delta extension at first use; the duckdb-ext-delta
    wheel ships it, so point the DuckDB connection that Feast (through ibis) uses there."""
    import duckdb_ext
    import ibis

    ext_dir = Path(duckdb_ext.__path__[0]) / "extensions"
    ibis.set_backend(ibis.duckdb.connect(extension_directory=str(ext_dir)))


def feature_store(cfg: VistaConfig):
    """A ``feast.FeatureStore`` on this profile's registry, offline and online stores."""
    from feast import FeatureStore

    feast_dir(cfg).mkdir(parents=True, exist_ok=True)
    _use_bundled_duckdb_delta()
    return FeatureStore(repo_path=str(feast_dir(cfg)), config=repo_config(cfg))


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
    """Register the repo's objects, deleting what the repo no longer defines, and rewrite
    the CLI's generated repo to match what was registered."""
    store = feature_store(cfg)
    objects = repo_objects(cfg)
    store.apply(objects, objects_to_delete=stale_objects(store, objects), partial=False)
    write_feast_repo(cfg)
    return store


def training_frame(store, entity_df: pd.DataFrame, service: str = FEATURE_SERVICE) -> pd.DataFrame:
    """Point-in-time join: each row sees the newest features stamped at or before it."""
    job = store.get_historical_features(
        entity_df=entity_df, features=store.get_feature_service(service)
    )
    return job.to_df()


def materialize(store, end: dt.datetime, start: dt.datetime | None = None) -> None:
    """Load the online views' rows stamped between ``start`` (default: where the last
    materialization ended) and ``end`` into the online store, the newest per user."""
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
