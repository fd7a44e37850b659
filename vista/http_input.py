"""Untrusted request bodies, read so that no body can stall, crash or bloat the service.

- Size: ``BodyLimit`` refuses a body over the limit with 413: on its Content-Length
  before a byte of it is read, and on the bytes actually received, since a chunked body
  declares no length.
- Parsing (``parse_json``): UTF-8 only; a duplicated key is refused by name (parsers
  disagree on which value wins, so accepting one is guessing); integers too long for any
  id become one value past the id range instead of a 4,300-digit ``int()`` error, so the
  model's range check names the field; NaN and Infinity stay floats for the same reason;
  nesting too deep for the parser is refused, not raised.
- Errors (``error_body``): each names its location, none echoes the input (a 422 that
  returns the body is as large as the body, and NaN in it cannot even be written as JSON),
  at most ``MAX_ERRORS`` of them, each key and message cut to a bounded length.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

MAX_ERRORS = 20
MAX_TEXT = 200  # characters of a key or message kept in an error
# the longest integer any id may be (2**63 - 1 has 19 digits); a longer one is out of range
# whatever its digits, so it is not converted (Python refuses int() past 4,300 digits)
MAX_INT_DIGITS = 20
OUT_OF_RANGE = 10**MAX_INT_DIGITS
JSON_MEDIA_TYPES = ("application/json",)


class BodyTooLargeError(Exception):
    def __init__(self, size: int, limit: int, declared: bool) -> None:
        super().__init__(size, limit, declared)
        self.size, self.limit, self.declared = size, limit, declared


class BadBodyError(ValueError):
    """The body is not a JSON document this service can read; ``errors`` say where."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors


def error(loc: Sequence[str | int], msg: str, kind: str) -> dict[str, Any]:
    """One error entry in FastAPI's shape (loc, msg, type), bounded and always writable
    as UTF-8 JSON (a key may hold a lone surrogate from a \\ud800 escape)."""
    return {"loc": [_bounded(p) if isinstance(p, str) else p for p in loc],
            "msg": _bounded(msg), "type": kind}  # fmt: skip


def _bounded(text: str) -> str:
    cut = text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "..."
    return cut.encode("utf-8", "backslashreplace").decode("utf-8")


def error_body(errors: Iterable[dict[str, Any]], total: int) -> dict[str, Any]:
    """A 422's JSON: the first MAX_ERRORS errors and how many there were in all."""
    return {"detail": list(errors)[:MAX_ERRORS], "errors_total": total}


def validation_errors(errors: Iterable[dict[str, Any]], prefix: tuple = ()) -> list[dict]:
    """Pydantic's errors as ``error`` entries: location, message and type only (no input,
    no context: both may carry the request's values)."""
    return [error((*prefix, *e["loc"]), e["msg"], e["type"]) for e in errors]


def too_large_message(exc: BodyTooLargeError) -> str:
    sent = f"declares {exc.size} bytes" if exc.declared else f"sent more than {exc.limit} bytes"
    return (f"request body too large: it {sent}, over the limit of {exc.limit} bytes "
            "(serving.max_body_bytes; VISTA__SERVING__MAX_BODY_BYTES)")  # fmt: skip


def is_json_media_type(content_type: str | None) -> bool:
    """No Content-Type, application/json or application/*+json (parameters ignored)."""
    if content_type is None:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media in JSON_MEDIA_TYPES or (media.startswith("application/") and
                                         media.endswith("+json"))  # fmt: skip


def _int(text: str) -> int:
    if len(text.lstrip("-")) <= MAX_INT_DIGITS:
        return int(text)
    return -OUT_OF_RANGE if text.startswith("-") else OUT_OF_RANGE


class _Duplicated(dict):
    """A JSON object that named a key more than once (kept only to say where)."""

    duplicate: str = ""


def _object_hook(marked: list[_Duplicated]):
    """json's object_pairs_hook: a dict, marked when a key repeats (the parser would
    otherwise keep the last value in silence)."""

    def build(pairs: list[tuple[str, Any]]) -> dict:
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        seen: set[str] = set()
        duplicated = _Duplicated(obj)
        duplicated.duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))
        marked.append(duplicated)
        return duplicated

    return build


def first_duplicate(value: Any) -> tuple[list[str | int], str] | None:
    """Path to the first object (depth first, in document order) with a duplicated key,
    and the key; iterative, so a deep document cannot exhaust the stack here."""
    stack: list[tuple[list[str | int], Any]] = [([], value)]
    while stack:
        path, node = stack.pop()
        if isinstance(node, _Duplicated):
            return path, node.duplicate
        if isinstance(node, dict):
            children = [([*path, k], v) for k, v in node.items()]
        elif isinstance(node, list):
            children = [([*path, i], v) for i, v in enumerate(node)]
        else:
            continue
        stack.extend(reversed(children))
    return None


def parse_json(body: bytes) -> Any:
    """The body as JSON, or BadBodyError naming what is wrong with it and where."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadBodyError([error(["body"], f"body is not UTF-8: byte 0x{body[exc.start]:02x} at "
                             f"offset {exc.start}", "utf8_invalid")]) from None  # fmt: skip
    marked: list[_Duplicated] = []
    try:
        value = json.loads(text, object_pairs_hook=_object_hook(marked), parse_int=_int)
    except json.JSONDecodeError as exc:
        raise BadBodyError([error(["body"], f"invalid JSON at line {exc.lineno} column {exc.colno} "
                             f"(offset {exc.pos}): {exc.msg}", "json_invalid")]) from None  # fmt: skip
    except RecursionError:
        raise BadBodyError([error(["body"], "JSON nested too deeply to parse (a request is at "
                             "most 3 levels deep)", "json_too_deep")]) from None  # fmt: skip
    # the walk costs about as much as the parse: only a document with a marked object
    found = first_duplicate(value) if marked else None
    if found is not None:
        path, key = found
        raise BadBodyError([error(["body", *path, key], f"duplicate key {key!r}: each field of an "
                             "object must appear once", "duplicate_key")])  # fmt: skip
    return value


def content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the HTTP server refuses a malformed one before the app
    return None


class BodyLimit:
    """ASGI middleware: 413 for a body over ``max_bytes``, declared or streamed."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = content_length(scope["headers"])
        if declared is not None and declared > self.max_bytes:
            await _send_too_large(send, BodyTooLargeError(declared, self.max_bytes, declared=True))
            return
        received = 0
        started = False

        async def limited_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLargeError(received, self.max_bytes, declared=False)
            return message

        async def tracked_send(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracked_send)
        except BodyTooLargeError as exc:
            if started:
                raise
            await _send_too_large(send, exc)


async def _send_too_large(send, exc: BodyTooLargeError) -> None:
    body = json.dumps({"detail": [error(["body"], too_large_message(exc), "body_too_large")]})
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})  # fmt: skip
    await send({"type": "http.response.body", "body": body.encode()})
