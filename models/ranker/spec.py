"""What a ranker reads (``RankerSpec``: variant, summary shape, vocabularies, lengths,
pooling) and the names of the training-set columns each variant needs.
"""

from __future__ import annotations

from dataclasses import dataclass

SUMMARY_COLUMN = "summary"
TAIL_ITEMS, TAIL_CATEGORIES = "tail_item_ids", "tail_categories"
CATEGORY_ITEMS = "category_item_ids"
BASE_COLUMNS = ("user_id", "item_id", "category", "label", "event_timestamp")
VARIANTS = ("vista", "din_last100", "sim_category", "full_attention", "blind")
POOLINGS = ("softmax", "sum", "slot", "din", "softmax_sum")
# the pooling each variant is defined with, and the ones it may choose on validation
DEFAULT_POOLING = {"vista": "softmax", "din_last100": "din", "sim_category": "din",
                   "full_attention": "softmax", "blind": "softmax"}  # fmt: skip
POOLING_CHOICES = {"vista": ("softmax", "sum", "slot"),
                   "din_last100": ("din", "softmax", "softmax_sum"),
                   "sim_category": ("din", "softmax", "softmax_sum"),
                   "full_attention": ("softmax", "sum", "softmax_sum"),
                   "blind": ("softmax",)}  # fmt: skip
DIN_LENGTH = SIM_LENGTH = 100
SCORING_CHUNK = 64  # fewest candidates per pass when scoring against one very long history
# candidate x key pairs per pass: bounds the attention matrix (C x L floats) in memory,
# so K summary tokens score thousands of candidates in one pass
SCORING_PAIRS = 2**17


class TrainingSetError(ValueError):
    """The training set misses a feature or holds values the ranker cannot use."""


@dataclass(frozen=True)
class SummaryShape:
    n_tokens: int
    token_dim: int
    n_heads: int = 1  # the summarizer's heads: slot pooling reads each head's slice apart
    sketch_heads: int = 0  # the last heads are an item sketch (models/sketch.py)


@dataclass(frozen=True)
class RankerSpec:
    """What a ranker reads: its variant, the summary shape, vocabularies, lengths."""

    variant: str
    summary: SummaryShape
    vocab_size: int
    category_vocab_size: int
    recent_items: int = 0  # vista only: the last R raw items beside the tokens
    full_attention_length: int = 2048
    pooling: str = ""  # of the summary tokens (vista) or the raw items; "" = the default
    # vista with slot pooling: add the candidate's match with its slot read per head
    slot_match: bool = False
    # vista with an item sketch: beside each head's count of the candidate, its slot's RMS
    sketch_energy: bool = True

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown ranker variant {self.variant!r}: one of {VARIANTS}")
        if not self.pooling:
            object.__setattr__(self, "pooling", DEFAULT_POOLING[self.variant])
        if self.pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {self.pooling!r}: one of {POOLINGS}")
        if self.variant == "vista" and self.pooling in ("din", "softmax_sum"):
            raise ValueError(f"the summary tokens pool by softmax, sum or slot, not {self.pooling}")
        if self.variant != "vista" and self.pooling == "slot":
            raise ValueError("slot pooling reads summary tokens: vista only")

    @property
    def uses_slot_match(self) -> bool:
        return self.slot_match and self.variant == "vista" and self.pooling == "slot"

    @property
    def required_columns(self) -> tuple[str, ...]:
        if self.variant == "vista":
            extra = (SUMMARY_COLUMN,) + ((TAIL_ITEMS, TAIL_CATEGORIES) if self.recent_items else ())
        elif self.variant == "sim_category":
            extra = (CATEGORY_ITEMS,)
        elif self.variant == "blind":
            extra = ()
        else:
            extra = (TAIL_ITEMS, TAIL_CATEGORIES)
        return BASE_COLUMNS + extra

    @property
    def sequence_length(self) -> int:
        """Raw items the variant reads per candidate (0: none)."""
        return {
            "vista": self.recent_items,
            "din_last100": DIN_LENGTH,
            "sim_category": SIM_LENGTH,
            "full_attention": self.full_attention_length,
            "blind": 0,
        }[self.variant]
