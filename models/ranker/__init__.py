"""Rankers that score a candidate item for a user: the VISTA ranker and its baselines.

Every variant embeds the candidate (item + category) the same way, pools a sequence of
user-side keys with attention conditioned on the candidate, and scores
[candidate, context, candidate * context] with the same MLP. Only the keys differ:

- ``vista``: the K cached summary tokens (plus, optionally, the last R raw items);
  cost per candidate O(K * D), whatever the history length.
- ``din_last100``: the last 100 raw items, pooled with DIN's activation unit
  (an MLP on [q, k, q - k, q * k], unnormalized weights).
- ``sim_category``: SIM-style hard search: the user's items of the candidate's category,
  most recent first, top 100 (precomputed per (user, category), read from Feast),
  pooled with the DIN unit.
- ``full_attention``: softmax target attention over the raw history, up to the longest
  tail stored (``ranker.full_attention_length``): the upper bound, at O(N) per candidate.
- ``blind``: no history at all, only the candidate (item, category): the floor that
  every history-reading model must clear, and the zero of "headroom captured".

How a variant pools its keys is part of its spec (``pooling``): ``softmax`` (scaled
dot-product attention), ``sum`` (unnormalised dot-product weights: a linear read) or
``din`` (DIN's activation unit, unnormalised). The evaluation lets each variant keep
the pooling that is best for it on validation users. VISTA's last R raw items, when
configured, are pooled apart from the summary tokens (their own context), so each
key set keeps the pooling that suits it.

All read point-in-time features from one Feast training set; sequences are kept ragged
and padded per batch, with batches grouped by length. Rows that read the same keys (the
candidates of one user at one snapshot) are scored together: their keys are embedded
and projected once, so full attention over 16k raw events costs per user what it used to
cost per impression.

The package, one module per idea: ``spec`` (what a ranker reads), ``data`` (checks and
ragged batches), ``modules`` (the PyTorch modules), ``training`` (training and scoring),
``artifact`` (saving and loading).
"""

from models.ranker.artifact import load_ranker, save_ranker
from models.ranker.data import RankerData, check_training_set, key_groups, prepare, unique_sequences
from models.ranker.modules import Ranker
from models.ranker.spec import (
    DIN_LENGTH,
    POOLING_CHOICES,
    POOLINGS,
    SIM_LENGTH,
    VARIANTS,
    RankerSpec,
    SummaryShape,
    TrainingSetError,
)
from models.ranker.training import TrainingCurve, score, score_one_user, train_ranker

__all__ = [
    "DIN_LENGTH",
    "POOLINGS",
    "POOLING_CHOICES",
    "SIM_LENGTH",
    "VARIANTS",
    "Ranker",
    "RankerData",
    "RankerSpec",
    "SummaryShape",
    "TrainingCurve",
    "TrainingSetError",
    "check_training_set",
    "key_groups",
    "load_ranker",
    "prepare",
    "save_ranker",
    "score",
    "score_one_user",
    "train_ranker",
    "unique_sequences",
]
