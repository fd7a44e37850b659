"""The Feast feature repository: plain Feast definitions, configured by one value.

Feast's templates read their settings at import time; this repo does not. Each module
builds its objects in a function of ``RepoSettings`` (table locations, the summarizer
version, K x D, codec, ttl), so one process can hold the repo of several profiles and
nothing is read from the environment. ``definitions(settings)`` returns them all.

Two ways in, both from ``vista.features``:

- the SDK: ``vista.features.feature_store(cfg)`` builds a ``feast.RepoConfig`` from the
  typed ``VistaConfig`` and applies ``definitions(settings)`` itself;
- the plain ``feast`` CLI: ``vista feast-repo`` writes a small generated Feast repo into
  the profile's state folder (``<state>/feast/``: ``feature_store.yaml`` from the same
  settings, and ``vista_feature_repo.py``, which calls ``definitions`` with this
  profile's values written in) and prints its path, so
  ``feast -c "$(vista feast-repo)" apply`` (or ``feature-views list``) works as usual.
"""
