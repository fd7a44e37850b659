"""The README's result tables are the committed result files, not typed figures."""

import importlib.util
import json

import pytest

from vista.provenance import PROJECT_ROOT, RESULTS_DIR

_spec = importlib.util.spec_from_file_location("readme_results",
                                               PROJECT_ROOT / "bench" / "readme_results.py")  # fmt: skip
readme_results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme_results)
README, render, sections = readme_results.README, readme_results.render, readme_results.sections


def test_readme_result_sections_equal_their_committed_files():
    text = README.read_text()
    found = sections(text)
    assert found, "the README quotes no generated result section"
    assert render(text) == text, "run: .venv/bin/python bench/readme_results.py"
    for name in found:
        meta = json.loads((RESULTS_DIR / f"{name}.json").read_text())
        assert meta["commit"], name  # where it came from
        assert meta["machine"]["cpus"], name


def test_a_section_without_its_file_fails(tmp_path):
    with pytest.raises(FileNotFoundError, match="results:nothing"):
        render("<!-- results:nothing -->\n<!-- /results:nothing -->", tmp_path)
