"""Data Docs render with no network: every generated page is parsed for anything that
would load from, link to or report to another host, for the data context id (a tracking
id), and for scripts (the pages need none: the index's tables carry their rows in the
HTML): every local reference resolves to a file of the site, and a reviewer in a headless
Chromium with the network off reads every validation on the index and a failed
expectation's values on its page."""

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


@pytest.mark.integration  # Chromium in a process of its own
def test_a_reviewer_in_a_browser_with_no_network_reads_every_validation_and_the_failure(
    site, tmp_path
):
    """What a reviewer sees in Chromium (Debian's, `make chromium`) opening the site from
    disk with the network off (offline, and no host name resolvable): the index shows a
    row per validation with its suite, table, date and outcome, and the failed one's row
    leads to its page, where the failed expectation shows the values that broke it. No
    page asks for anything but files of the site; the screenshots are drawn pages."""
    import datetime as dt

    from tests.browser import NO_NAMES, chromium, screenshot

    docs, _ = site
    requested: list[str] = []
    with chromium(NO_NAMES) as browser:
        page = browser.new_context(offline=True, viewport={"width": 1280, "height": 900}).new_page()
        page.on("request", lambda request: requested.append(request.url))
        page.goto((docs / "index.html").resolve().as_uri())
        rows = page.locator("#Validation-Results tr.ge-offline-row")
        # columns: status, run time, run name, asset (the table), batch, suite
        shown = [(r.locator("td i").first.get_attribute("class"),
                  *(r.locator("td").nth(i).inner_text().strip() for i in (1, 3, 5)))
                 for r in rows.all()]  # fmt: skip
        outcomes = sorted(("failed" if "fa-times" in icon else "success", table, suite)
                          for icon, _, table, suite in shown)  # fmt: skip
        assert outcomes == [("failed", "events", "events"), ("success", "events", "events"),
                            ("success", "user_summaries", "user_summaries")]  # fmt: skip
        today = dt.datetime.now(dt.UTC).date()
        for _, when, _, _ in shown:  # validated just now, by the fixture
            stamp = dt.datetime.strptime(when, "%Y-%m-%d %H:%M:%S UTC").replace(tzinfo=dt.UTC)
            assert abs(stamp.date() - today) <= dt.timedelta(days=1), when
        screenshot(page, tmp_path, "data-docs-index.png")

        rows.filter(has=page.locator("i.fa-times")).locator("a.ge-offline-row-link").click()
        page.wait_for_load_state()
        assert "/validations/events/" in page.url
        failed = page.locator("tr:has(> td i.fa-times)")
        assert failed.count() == 1  # one expectation failed: user_id >= 0
        text = " ".join(failed.inner_text().split())
        assert "values must be greater than or equal to 0.0" in text
        assert "2 unexpected values found" in text
        unexpected = [[c.inner_text().strip() for c in row.locator("td").all()]
                      for row in failed.locator("table tbody tr").all()]  # fmt: skip
        assert unexpected == [["-1", "2"]]  # the planted value, on its two rows
        failed.scroll_into_view_if_needed()
        screenshot(page, tmp_path, "data-docs-failed-expectation.png")
    assert requested
    assert [url for url in requested if not url.startswith("file://")] == []
