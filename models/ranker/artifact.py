"""A trained ranker on disk: weights, spec, settings and metadata in one file, written
atomically.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from models.ranker.modules import Ranker
from models.ranker.spec import RankerSpec, SummaryShape
from vista.core.config import RankerConfig


def save_ranker(model: Ranker, cfg: RankerConfig, path: Path, metadata: dict) -> Path:
    """Weights, spec, ranker settings and ``metadata`` (the summarizer version it was
    trained on, metrics) in one file, written atomically so a reader never sees half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(
        {
            "spec": dataclasses.asdict(model.spec),
            "config": cfg.model_dump(mode="json"),
            "state_dict": model.state_dict(),
            "metadata": metadata,
        },
        tmp,
    )
    tmp.replace(path)
    return path


def load_ranker(path: Path) -> tuple[Ranker, dict]:
    """The ranker saved at ``path`` (eval mode) and its metadata."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    spec_fields = dict(saved["spec"])
    spec = RankerSpec(**{**spec_fields, "summary": SummaryShape(**spec_fields["summary"])})
    model = Ranker(spec, RankerConfig.model_validate(saved["config"]))
    model.load_state_dict(saved["state_dict"])
    model.eval()
    return model, saved["metadata"]
