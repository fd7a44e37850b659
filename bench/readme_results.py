"""Put committed result tables into the README: every figure it quotes is generated.

A README section between ``<!-- results:NAME -->`` and ``<!-- /results:NAME -->`` is
replaced by docs/results/NAME.md (written by the bench script that measured it, beside
NAME.json with the machine and commit). tests/test_readme_results.py fails when a
section differs from its file, so a figure typed by hand, or a stale one, cannot stay.

    .venv/bin/python bench/readme_results.py          # rewrite README.md in place
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from vista.provenance import PROJECT_ROOT, RESULTS_DIR

README = PROJECT_ROOT / "README.md"
SECTION = re.compile(r"(<!-- results:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /results:(?P=name) -->)",
                     re.DOTALL)  # fmt: skip


def sections(text: str) -> dict[str, str]:
    """name -> the README's current text of that section."""
    return {m["name"]: m["body"] for m in SECTION.finditer(text)}


def render(text: str, results: Path = RESULTS_DIR) -> str:
    """The README with every results section replaced by its file (missing: an error)."""

    def fill(m: re.Match) -> str:
        path = results / f"{m['name']}.md"
        if not path.exists():
            raise FileNotFoundError(f"README section results:{m['name']} has no {path}")
        return f"{m.group(1)}{path.read_text()}{m.group(4)}"

    return SECTION.sub(fill, text)


def main() -> int:
    text = README.read_text()
    README.write_text(render(text))
    print(f"{len(sections(text))} result section(s) written into {README.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
