"""Every Feast object of the repo, built from one ``RepoSettings``."""

from __future__ import annotations

from typing import Any

from feature_repo.data_sources import data_sources
from feature_repo.entities import entities
from feature_repo.feature_services import feature_services
from feature_repo.feature_views import feature_views
from feature_repo.settings import RepoSettings


def definitions(settings: RepoSettings) -> dict[str, Any]:
    """Name -> Feast object, fresh on every call: entities, sources, views, services.

    The names are the Python names the generated CLI repo gives them (a source is
    ``<table>_source``); Feast registers each object under its own ``name``."""
    made_entities = entities()
    sources = data_sources(settings)
    views = feature_views(settings, made_entities, sources)
    services = feature_services(views)
    return {
        **made_entities._asdict(),
        **{f"{name}_source": source for name, source in sources._asdict().items()},
        **views._asdict(),
        **services._asdict(),
    }
