"""The README read as a script: its fenced code blocks (language, the heading they sit
under), its inline code spans, and shell text split into commands and words.

Pure text functions, no I/O: tests/test_readme.py decides what each command is and runs
it. Shell text is split the way bash reads it as far as a README uses bash: a trailing
backslash continues the line, `#` starts a comment where a word could start (outside
quotes), `;`, `&&`, `||` and `|` separate commands, leading NAME=value words set the
environment, and `$(...)` holds a command of its own."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([\w+-]*)")
CLOSE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*$")
HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
# a span of single backticks that does not cross a blank line (a paragraph's end)
SPAN = re.compile(r"(?<!`)`(?!`)((?:[^`\n]|\n(?![ \t]*\n))+?)`(?!`)")
ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")
SEPARATORS = {";", "&&", "||", "|", "&"}
# generated sections (bench/readme_results.py) carry headings of their own documents
RESULTS_OPEN, RESULTS_CLOSE = re.compile(r"<!-- results:"), re.compile(r"<!-- /results:")


@dataclass(frozen=True)
class Block:
    """A fenced code block: its language ('' when none), text, the nearest heading above
    it and the line of its opening fence (1-based)."""

    lang: str
    text: str
    heading: str
    line: int


@dataclass(frozen=True)
class Span:
    """An inline code span outside the fenced blocks, its whitespace folded to spaces."""

    text: str
    heading: str
    line: int


@dataclass(frozen=True)
class Command:
    """One line of shell as bash would run it (continuations joined, comment cut off)."""

    text: str
    line: int
    comment: str = ""


@dataclass(frozen=True)
class Simple:
    """A simple command: NAME=value words before it, then its words."""

    env: dict[str, str] = field(default_factory=dict)
    argv: list[str] = field(default_factory=list)


def _walk(markdown: str) -> list[tuple[str, str, str]]:
    """Each line with the heading it sits under and its role: "open" (a fence that opens
    a block, its language), "code" (inside a block), "close", or "prose". A generated
    results section's own headings and `#` lines in code are no headings of the README."""
    found, heading, fence, generated = [], "", None, False
    for line in markdown.splitlines():
        opens = FENCE.match(line)
        if fence is None and opens:
            fence, role = opens[1], "open"
        elif fence is not None:
            closes = CLOSE.match(line)
            if closes and closes[1][0] == fence[0] and len(closes[1]) >= len(fence):
                fence, role = None, "close"
            else:
                role = "code"
        else:
            role = "prose"
            if RESULTS_OPEN.match(line) or RESULTS_CLOSE.match(line):
                generated = bool(RESULTS_OPEN.match(line))
            elif (head := HEADING.match(line)) and not generated:
                heading = head[2]
        found.append((line, heading, role))
    if fence is not None:
        raise ValueError("a fenced block is never closed")
    return found


def headings(markdown: str) -> list[str]:
    """The heading each line sits under (index 0: line 1)."""
    return [heading for _, heading, _ in _walk(markdown)]


def blocks(markdown: str) -> list[Block]:
    """Every fenced code block, in order."""
    found, opened, body = [], None, []
    for number, (line, heading, role) in enumerate(_walk(markdown), start=1):
        if role == "open":
            opened, body = (FENCE.match(line)[2], heading, number), []
        elif role == "code":
            body.append(line)
        elif role == "close":
            lang, under, first = opened
            found.append(Block(lang, "\n".join(body) + "\n", under, first))
    return found


def spans(markdown: str) -> list[Span]:
    """Every inline code span outside the fenced blocks, in order."""
    walked = _walk(markdown)
    text = "\n".join(line if role == "prose" else "" for line, _, role in walked)
    found = []
    for match in SPAN.finditer(text):
        number = text.count("\n", 0, match.start()) + 1
        found.append(Span(" ".join(match[1].split()), walked[number - 1][1], number))
    return found


def _cut_comment(line: str) -> tuple[str, str]:
    """(the code, the comment) of one shell line: `#` where a word may start, unquoted."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
            elif char == "\\" and quote == '"':
                continue
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1 :].strip()
    return line.rstrip(), ""


def commands(shell: str, first_line: int = 1) -> list[Command]:
    """The commands of a shell text: continuations joined, comments and blanks dropped.
    ``first_line`` is the line of the text's first line (for messages)."""
    found, pending, start = [], "", None
    for number, raw in enumerate(shell.splitlines(), start=first_line):
        code, comment = _cut_comment(raw)
        if start is None:
            start = number
        if code.endswith("\\"):
            pending += code[:-1] + " "
            continue
        text = " ".join((pending + code).split())
        if text:
            found.append(Command(text, start, comment))
        pending, start = "", None
    if pending.strip():
        raise ValueError(f"line {start}: the last line ends in a continuation")
    return found


def simple_commands(text: str, synopsis: bool = False) -> list[Simple]:
    """The simple commands of one command line, `$(...)` ones included (after the one
    that holds them), split at ; && || | and &. A ``synopsis`` (prose's `vista quarantine
    list|counts`) keeps `|` inside words: there it separates alternatives."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&" if synopsis else ";&|")
    lexer.whitespace_split = True
    words, found = [], []

    def close() -> None:
        env = {}
        while words and ASSIGNMENT.match(words[0]):
            name, _, value = words.pop(0).partition("=")
            env[name] = value
        if words or env:
            found.append(Simple(env, list(words)))
        inner = [c for w in words for c in SUBSTITUTION.findall(w)]
        inner += [c for v in env.values() for c in SUBSTITUTION.findall(v)]
        for command in inner:
            found.extend(simple_commands(command, synopsis))
        words.clear()

    for word in lexer:
        if word in SEPARATORS:
            close()
        else:
            words.append(word)
    close()
    return found


def options(argv: list[str]) -> list[str]:
    """The options a command's words name (`--flag`, `-p`; `--x=1` names `--x`; an
    optional one shown in brackets, `[--flag value]`, counts)."""
    named = []
    for word in argv[1:]:
        word = word.strip("[]")
        if re.match(r"^--?[A-Za-z]", word):
            named.append(word.split("=", 1)[0])
    return named
