"""Every class of bad request tried against the scoring service, with the answer it must
get. tests/test_serving.py sends each one; bench/bad_input_table.py renders this list as
docs/BAD_INPUT.md, and a test checks that the committed file is that rendering, so the
table and the tests cannot drift apart."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from vista.core.config import ServingConfig
from vista.serving import MAX_CANDIDATES

LIMIT = ServingConfig().max_body_bytes
OK_CANDIDATE = {"item_id": 1, "category": 2}


@dataclass(frozen=True)
class BadRequest:
    name: str
    what: str  # the class of bad input, in words
    shown: str  # the request as the table shows it
    body: Callable[[], bytes]
    status: int
    loc: tuple[str | int, ...] | None = None  # where a 422 must say the problem is
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False  # sent without a Content-Length, in chunks
    method: str = "POST"


def doc(user_id: object = 1, candidates: object = (OK_CANDIDATE,), **extra) -> bytes:
    """A request body from Python values (NaN and Infinity written as JSON parsers read
    them; tuples become lists)."""
    body = {"user_id": user_id, "candidates": candidates, **extra}
    return json.dumps(body, default=list).encode()


def raw(text: str | bytes) -> Callable[[], bytes]:
    data = text.encode() if isinstance(text, str) else text
    return lambda: data


def padded(prefix: bytes, size: int) -> bytes:
    """``prefix`` then spaces up to ``size`` bytes (whitespace is valid JSON)."""
    return prefix + b" " * (size - len(prefix))


C = '[{"item_id": 1, "category": 2}]'
CASES: list[BadRequest] = [
    # shape
    BadRequest("missing_candidates", "required field missing", '{"user_id": 1}',
               raw('{"user_id": 1}'), 422, ("body", "candidates")),
    BadRequest("empty_candidates", "empty candidate list", '{"user_id": 1, "candidates": []}',
               lambda: doc(candidates=[]), 422, ("body", "candidates")),
    BadRequest("too_many_candidates", f"more than {MAX_CANDIDATES:,} candidates",
               f"{MAX_CANDIDATES + 1:,} valid candidates",
               lambda: doc(candidates=[OK_CANDIDATE] * (MAX_CANDIDATES + 1)), 422,
               ("body", "candidates")),
    BadRequest("candidates_not_a_list", "wrong type: text for a list",
               '{"user_id": 1, "candidates": "1,2,3"}', lambda: doc(candidates="1,2,3"), 422,
               ("body", "candidates")),
    BadRequest("missing_item_id", "candidate without its required item_id (a category "
               "alone; the category may be left out, never the id)",
               '{..., "candidates": [{"category": 1}]}', lambda: doc(candidates=[{"category": 1}]),
               422, ("body", "candidates", 0, "item_id")),
    BadRequest("unknown_field", "unknown field in a candidate",
               '{..., "candidates": [{"item_id": 1, "category": 1, "price": 3}]}',
               lambda: doc(candidates=[{**OK_CANDIDATE, "price": 3}]), 422,
               ("body", "candidates", 0, "price")),
    BadRequest("unknown_top_field", "unknown top-level field", '{..., "debug": true}',
               lambda: doc(debug=True), 422, ("body", "debug")),
    # types
    BadRequest("item_id_text", "wrong type: text id", '{..., "candidates": [..., {"item_id": "x1", ...}]}',
               lambda: doc(candidates=[OK_CANDIDATE, {"item_id": "x1", "category": 2}]), 422,
               ("body", "candidates", 1, "item_id")),
    BadRequest("item_id_float", "fractional id", '{"item_id": 1.5, ...}',
               lambda: doc(candidates=[{"item_id": 1.5, "category": 1}]), 422,
               ("body", "candidates", 0, "item_id")),
    BadRequest("item_id_exponent", "id in exponent form", '{"item_id": 1e3, ...}',
               raw('{"user_id": 1, "candidates": [{"item_id": 1e3, "category": 1}]}'), 422,
               ("body", "candidates", 0, "item_id")),
    BadRequest("user_id_text", "wrong type: text user id", '{"user_id": "u1", ...}',
               lambda: doc(user_id="u1"), 422, ("body", "user_id")),
    BadRequest("user_id_digits_as_text", "number given as text (no coercion)",
               '{"user_id": "5", ...}', lambda: doc(user_id="5"), 422, ("body", "user_id")),
    BadRequest("user_id_bool", "boolean for an id", '{"user_id": true, ...}',
               lambda: doc(user_id=True), 422, ("body", "user_id")),
    BadRequest("user_id_null", "null for an id", '{"user_id": null, ...}',
               lambda: doc(user_id=None), 422, ("body", "user_id")),
    BadRequest("user_id_object", "object for an id", '{"user_id": {"id": 1}, ...}',
               lambda: doc(user_id={"id": 1}), 422, ("body", "user_id")),
    # ranges
    BadRequest("negative_user_id", "negative user id", '{"user_id": -5, ...}',
               lambda: doc(user_id=-5), 422, ("body", "user_id")),
    BadRequest("negative_item_id", "negative item id", '{"item_id": -5, ...}',
               lambda: doc(candidates=[{"item_id": -5, "category": 1}]), 422,
               ("body", "candidates", 0, "item_id")),
    BadRequest("user_id_2_63", "id of 2**63 (past int64)", '{"user_id": 9223372036854775808, ...}',
               lambda: doc(user_id=2**63), 422, ("body", "user_id")),
    BadRequest("item_id_2_63", "item id of 2**63", '{"item_id": 9223372036854775808, ...}',
               lambda: doc(candidates=[{"item_id": 2**63, "category": 1}]), 422,
               ("body", "candidates", 0, "item_id")),
    BadRequest("category_2_64", "category of 2**64", '{"category": 18446744073709551616, ...}',
               lambda: doc(candidates=[{"item_id": 1, "category": 2**64}]), 422,
               ("body", "candidates", 0, "category")),
    BadRequest("user_id_10_100", "id of 10**100", '{"user_id": 1000...0 (101 digits), ...}',
               lambda: doc(user_id=10**100), 422, ("body", "user_id")),
    BadRequest("user_id_5000_digits", "id of 5,000 digits (past Python's int() limit)",
               '{"user_id": 999...9 (5,000 digits), ...}',
               raw('{"user_id": ' + "9" * 5000 + ', "candidates": ' + C + "}"), 422,
               ("body", "user_id")),
    BadRequest("user_id_minus_10_30", "id of -10**30", '{"user_id": -1000...0 (31 digits), ...}',
               lambda: doc(user_id=-(10**30)), 422, ("body", "user_id")),
    BadRequest("user_id_1e400", "number past float range", '{"user_id": 1e400, ...}',
               raw('{"user_id": 1e400, "candidates": ' + C + "}"), 422, ("body", "user_id")),
    # non-finite numbers
    BadRequest("nan_user_id", "NaN", '{"user_id": NaN, ...}',
               raw('{"user_id": NaN, "candidates": ' + C + "}"), 422, ("body", "user_id")),
    BadRequest("infinity_item_id", "Infinity", '{"item_id": Infinity, ...}',
               raw('{"user_id": 1, "candidates": [{"item_id": Infinity, "category": 1}]}'), 422,
               ("body", "candidates", 0, "item_id")),
    BadRequest("minus_infinity_category", "-Infinity", '{"category": -Infinity, ...}',
               raw('{"user_id": 1, "candidates": [{"item_id": 1, "category": -Infinity}]}'), 422,
               ("body", "candidates", 0, "category")),
    # duplicate keys
    BadRequest("duplicate_user_id", "duplicate key", '{"user_id": 1, "user_id": 2, ...}',
               raw('{"user_id": 1, "user_id": 2, "candidates": ' + C + "}"), 422,
               ("body", "user_id")),
    BadRequest("duplicate_key_in_candidate", "duplicate key in a candidate",
               '{..., "candidates": [{"item_id": 1, "item_id": 2, "category": 1}]}',
               raw('{"user_id": 1, "candidates": [{"item_id": 1, "item_id": 2, "category": 1}]}'),
               422, ("body", "candidates", 0, "item_id")),
    # not an object
    BadRequest("body_array", "JSON array for the body", "[1, 2]", raw("[1, 2]"), 422, ("body",)),
    BadRequest("body_string", "JSON string for the body", '"hello"', raw('"hello"'), 422,
               ("body",)),
    BadRequest("body_null", "JSON null for the body", "null", raw("null"), 422, ("body",)),
    BadRequest("body_number", "JSON number for the body", "42", raw("42"), 422, ("body",)),
    # not JSON
    BadRequest("empty_body", "empty body", "(0 bytes)", raw(b""), 422, ("body",)),
    BadRequest("truncated_json", "truncated JSON", '{"user_id": 1, "candidates": [',
               raw('{"user_id": 1, "candidates": ['), 422, ("body",)),
    BadRequest("trailing_data", "data after the document", '{"user_id": 1, ...} x',
               lambda: doc() + b" x", 422, ("body",)),
    BadRequest("single_quotes", "not JSON: single quotes", "{'user_id': 1}",
               raw("{'user_id': 1}"), 422, ("body",)),
    BadRequest("comment", "not JSON: a comment", '{"user_id": 1 /* me */, ...}',
               raw('{"user_id": 1 /* me */, "candidates": ' + C + "}"), 422, ("body",)),
    # encodings
    BadRequest("invalid_utf8", "invalid UTF-8 byte", '{"user_id": 1, "x": "\\xff"}',
               raw(b'{"user_id": 1, "x": "\xff", "candidates": ' + C.encode() + b"}"), 422,
               ("body",)),
    BadRequest("utf8_bom", "UTF-8 byte-order mark", "\\xef\\xbb\\xbf{...}",
               lambda: b"\xef\xbb\xbf" + doc(), 422, ("body",)),
    BadRequest("utf16", "UTF-16 body", '{"user_id": 1, ...} in UTF-16',
               lambda: doc().decode().encode("utf-16"), 422, ("body",)),
    BadRequest("lone_surrogate_key", "lone surrogate escape in a key", '{"\\ud800": 1, ...}',
               raw('{"\\ud800": 1, "user_id": 1, "candidates": ' + C + "}"), 422, ("body",)),
    # sizes within the limit
    BadRequest("deep_nesting", "nesting 1 MiB deep", "[[[[... (1 MiB of [)",
               lambda: b"[" * (LIMIT - 1), 422, ("body",)),
    BadRequest("deep_nesting_in_field", "a field nested 100,000 deep",
               '{"user_id": [[[... (100,000 deep)]]], ...}',
               lambda: b'{"user_id": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 422, ("body",)),
    BadRequest("huge_key", "a 500 KB key", '{"aaa... (500,000 a)": 1, ...}',
               lambda: doc(**{"a" * 500_000: 1}), 422, ("body", "a" * 200 + "...")),
    BadRequest("huge_text_id", "a 1,000,000-character text for an id",
               '{"user_id": "xxx... (1,000,000 x)", ...}', lambda: doc(user_id="x" * 1_000_000),
               422, ("body", "user_id")),
    BadRequest("many_invalid_candidates", f"{MAX_CANDIDATES:,} invalid candidates "
               "(answer: the first 20 errors and the count)",
               f'{{..., "candidates": [{{"item_id": "x", "category": "y"}} x {MAX_CANDIDATES:,}]}}',
               lambda: doc(candidates=[{"item_id": "x", "category": "y"}] * MAX_CANDIDATES), 422,
               ("body", "candidates", 0, "item_id")),
    # over the limit, and other HTTP
    BadRequest("over_limit_declared", f"body over serving.max_body_bytes ({LIMIT:,} B), "
               "declared in Content-Length", f"{LIMIT + 1:,} bytes",
               lambda: padded(doc(), LIMIT + 1), 413, ("body",)),
    BadRequest("over_limit_chunked", "body over the limit, chunked (no Content-Length)",
               f"{LIMIT + 1:,} bytes, Transfer-Encoding: chunked",
               lambda: padded(doc(), LIMIT + 1), 413, ("body",), chunked=True),
    BadRequest("text_content_type", "Content-Type not JSON", "Content-Type: text/plain",
               lambda: doc(), 415, ("header", "content-type"),
               headers={"content-type": "text/plain"}),
    BadRequest("form_content_type", "form Content-Type (curl -d's default)",
               "Content-Type: application/x-www-form-urlencoded", lambda: doc(), 415,
               ("header", "content-type"), headers={"content-type": "application/x-www-form-urlencoded"}),
    BadRequest("get_score", "wrong method", "GET /score", raw(b""), 405, method="GET"),
]  # fmt: skip
