"""Data Docs render with no network: every generated page is parsed for anything that
would load from, link to or report to another host, for the data context id (a tracking
id), and for scripts (the pages need none: the index's tables carry their rows in the
HTML): every local reference resolves to a file of the site, and a headless Chromium
with no name resolution renders the index with its table."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest

from tests.test_validation import NOW, events
from validation.checkpoints import DOCS_SITE, DataQualityError, _context, run_suite
from validation.offline_docs import offline_rows, offline_source
from validation.suites import events_frame, events_suite, summaries_frame, summaries_suite

URL_ATTRIBUTES = {"src", "href", "srcset", "action", "formaction", "data", "poster",
                  "background", "xlink:href", "data-href"}  # fmt: skip
CSS_URL = re.compile(r"""url\(\s*["']?([^"')]+)|@import\s+["']([^"']+)""", re.IGNORECASE)


def is_outside(url: str) -> bool:
    """A URL that reaches another host: any scheme but the page's own file, or //host."""
    parts = urlsplit(url.strip())
    return bool(parts.netloc) or parts.scheme not in ("", "data")


class PageScan(HTMLParser):
    """Every URL a page would load or link (attributes, inline styles, <style>), and
    its <script> tags."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts = 0
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self.scripts += tag == "script"
        self._in_style = tag == "style"
        for name, value in attrs:
            if value is None:
                continue
            if name in URL_ATTRIBUTES:
                self.urls += [v.split()[0] for v in value.split(",") if v.strip()]
            elif name == "style":
                self.urls += [a or b for a, b in CSS_URL.findall(value)]

    def handle_endtag(self, tag):
        self._in_style = False if tag == "style" else self._in_style

    def handle_data(self, data):
        if self._in_style:
            self.urls += [a or b for a, b in CSS_URL.findall(data)]


def scan(page: Path) -> PageScan:
    parser = PageScan()
    parser.feed(page.read_text())
    return parser


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """One run's report folder: a passing and a failing events validation (critical, so
    it raises) and a summaries one; returns (docs folder, data context id)."""
    report = tmp_path_factory.mktemp("report")
    run_suite(events_suite(NOW), events_frame(events()), report)
    bad = events()
    bad.loc[[2, 5], "user_id"] = -1
    with pytest.raises(DataQualityError):
        run_suite(events_suite(NOW), events_frame(bad), report)
    vectors = pd.DataFrame({"user_id": range(3), "summarizer_version": "s-x", "history_length": 5,
                            "summary": [np.ones(8, np.float32)] * 3})  # fmt: skip
    run_suite(summaries_suite(2, 4), summaries_frame(vectors, 2), report)
    context_id = str(_context(report).variables.data_context_id)
    return report / "data_docs", context_id


def pages(docs: Path) -> list[Path]:
    found = sorted(docs.rglob("*.html"))
    assert len(found) >= 6  # index, 2 suites, 3 validation results
    return found


def test_no_page_loads_or_links_another_host(site):
    docs, _ = site
    outside = {str(p.relative_to(docs)): [u for u in scan(p).urls if is_outside(u)]
               for p in pages(docs)}  # fmt: skip
    assert {page: urls for page, urls in outside.items() if urls} == {}
    # not even in text: no http(s) URL anywhere in a page
    assert [p.name for p in pages(docs) if re.search(r"https?://", p.read_text())] == []


def test_no_stylesheet_of_the_site_names_another_host(site):
    docs, _ = site
    for sheet in docs.rglob("*.css"):
        assert [u for u in (a or b for a, b in CSS_URL.findall(sheet.read_text()))
                if is_outside(u)] == [], sheet  # fmt: skip


def test_no_file_of_the_site_carries_the_data_context_id(site):
    docs, context_id = site
    assert re.fullmatch(r"[0-9a-f-]{36}", context_id)
    carriers = [p for p in docs.rglob("*") if p.is_file() and context_id.encode() in p.read_bytes()]
    assert carriers == []
    assert [p.name for p in pages(docs) if "dataContextId" in p.read_text()] == []


def test_pages_need_no_script_and_every_local_reference_resolves(site):
    docs, _ = site
    for page in pages(docs):
        found = scan(page)
        assert found.scripts == 0, page
        for url in found.urls:
            path = urlsplit(url).path
            if path:  # a same-page #anchor has none
                assert (page.parent / path).resolve().is_file(), f"{page}: {url}"


def test_the_index_lists_every_validation_with_its_status_in_the_html(site):
    docs, _ = site
    index = (docs / "index.html").read_text()
    results = sorted(docs.glob("validations/**/*.html"))
    assert len(results) == 3
    table = index.split('id="Validation-Results"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr class="ge-offline-row">(.*?)</tr>', table, re.DOTALL)
    assert len(rows) == len(results)
    linked = [re.search(r'class="ge-offline-row-link" href="([^"]+)"', r).group(1) for r in rows]
    assert sorted(docs / link for link in linked) == results
    # newest first, as bootstrap-table sorted them; the failed run shows as failed
    times = [re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", r).group(0) for r in rows]
    assert times == sorted(times, reverse=True)
    assert sum("fa-times" in r for r in rows) == 1
    assert sum("fa-check-circle" in r for r in rows) == 2
    assert {"events", "user_summaries"} <= set(
        re.findall(r">\s*(events|user_summaries)\s*<", table)
    )


def test_a_report_folder_built_before_is_rebuilt_offline(site, tmp_path):
    """A report folder whose site still has GX's default views (made before this
    change): its next validation switches the site over and rebuilds every page."""
    report = tmp_path / "report"
    run_suite(events_suite(NOW), events_frame(events()), report)
    context = _context(report)
    context.update_data_docs_site(DOCS_SITE, {
        "class_name": "SiteBuilder",
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                          "base_directory": str(report / "data_docs")},
    })  # fmt: skip
    context.build_data_docs(site_names=[DOCS_SITE])
    old = report / "data_docs" / "index.html"
    assert "cdn.jsdelivr.net" in old.read_text()  # GX's default pages load from CDNs
    run_suite(summaries_suite(2, 4), summaries_frame(pd.DataFrame({
        "user_id": [1], "summarizer_version": "s-x", "history_length": 5,
        "summary": [np.ones(8, np.float32)]}), 2), report)  # fmt: skip
    for page in (report / "data_docs").rglob("*.html"):
        assert not re.search(r"https?://", page.read_text()), page


# ---------------------------------------------------------------- the pure parts
def test_offline_source_drops_what_loads_from_another_host_only():
    template = (
        '<link rel="stylesheet" href="https://cdn.example/b.css"/>\n'
        '<script src="//cdn.example/j.js"></script>\n'
        '<script src="./static/local.js"></script>\n'
        '<a href="https://example.org">a link</a>\n'
        ".x { background: url('https://s3.example/logo.png') 0 0; }\n"
        ".y { background: url(static/images/logo.png); }"
    )
    assert offline_source(template) == (
        "\n\n"
        '<script src="./static/local.js"></script>\n'
        '<a href="https://example.org">a link</a>\n'
        ".x { background: none 0 0; }\n"
        ".y { background: url(static/images/logo.png); }"
    )


def test_offline_rows_sort_like_bootstrap_table_and_link_a_text_cell():
    columns = [{"field": "status"}, {"field": "run_time", "sortName": "_t"}, {"field": "name"}]
    rows = [
        {"status": "<i class='fas fa-times'></i>", "run_time": "b", "_t": 1.0, "name": "x",
         "_table_row_link_path": "v/1.html"},
        {"status": "<i></i>", "run_time": "a", "_t": 2.0, "name": "<a href='s.html'>y</a>"},
    ]  # fmt: skip
    out = offline_rows(rows, columns, {"sortName": "run_time", "sortOrder": "desc"})
    assert [r["_t"] for r in out] == [2.0, 1.0]
    assert [r["_offline_link_field"] for r in out] == ["run_time", "run_time"]
    assert offline_rows(rows, columns, {})[0]["_t"] == 1.0  # no sortName: as given


def test_a_headless_browser_with_no_network_shows_the_index_table(site, tmp_path):
    """Chromium (Debian's, `make chromium`) opens the index with every host name
    unresolvable: the DOM it renders holds the validation table's rows, and its
    screenshot is a drawn page (many colours), not a blank or an error page."""
    import shutil
    import subprocess

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no headless browser (make chromium installs Debian's)")
    docs, _ = site
    url = (docs / "index.html").resolve().as_uri()
    offline = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp_path / 'p'}",
               "--window-size=1280,900"]  # fmt: skip
    dom = subprocess.run([*offline, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120, check=True).stdout  # fmt: skip
    table = dom.split('id="Validation-Results"', 1)[1].split("</table>", 1)[0]
    assert len(re.findall(r'<tr class="ge-offline-row"', table)) == 3
    shot = tmp_path / "index.png"
    subprocess.run([*offline, f"--screenshot={shot}", url], capture_output=True, timeout=120,
                   check=True)  # fmt: skip
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    assert len(np.unique(pixels, axis=0)) > 20  # text, icons and table lines were drawn
