"""Data Docs that render with no network and carry no tracking id.

GX's pages load jQuery, bootstrap, bootstrap-table, vega and Font Awesome from CDNs,
build the index's table in the browser (offline it is empty), and load their logo from
the vendor's server with the data context id in the URL. The views here render the same
pages from GX's own templates with:

- every ``<script src>``/``<link href>`` to another host and every outside ``url()`` in
  a stylesheet dropped as the template is loaded (``offline_source``), so a tag GX adds
  later is dropped too;
- a few templates of ours first (``data_docs_templates/``): tables with their rows in
  the HTML, the logo from the site's own ``static/images``, no newsletter footer, and a
  stylesheet standing in for the bootstrap rules the layout needs;
- the filter that appended the data context id to URLs made a no-op.

The site config (``site_config``) points GX's site builder at these views; it is plain
data, stored in each run's ``gx/great_expectations.yml``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

# GX reads this when it is first imported: no usage events to the vendor unless asked for
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from great_expectations.render.view import (
    DefaultJinjaIndexPageView,
    DefaultJinjaPageView,
)
from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    Environment,
    FileSystemLoader,
    pass_context,
)

TEMPLATES = Path(__file__).with_name("data_docs_templates")

# a URL that leaves the site: a scheme (http:, https:, ...) or protocol-relative //host
_OUTSIDE = r"""(?:[a-z][a-z0-9+.-]*:)?//"""
_OUTSIDE_TAG = re.compile(
    rf"""<(script|link)\b[^>]*?\b(?:src|href)\s*=\s*["']?{_OUTSIDE}[^>]*>(?:\s*</script>)?""",
    re.IGNORECASE,
)
_OUTSIDE_CSS_URL = re.compile(rf"""url\(\s*["']?{_OUTSIDE}[^)]*\)""", re.IGNORECASE)


def offline_source(text: str) -> str:
    """A template or stylesheet without the tags and ``url()``s that load from another
    host. Only loading tags go: a plain ``<a href>`` to another host is a link, not a
    request (the templates of ours drop GX's few)."""
    return _OUTSIDE_CSS_URL.sub("none", _OUTSIDE_TAG.sub("", text))


def offline_rows(
    rows: Iterable[Mapping[str, Any]],
    columns: list[Mapping[str, Any]],
    options: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """A bootstrap table's rows in the order bootstrap-table would show them first
    (``options['sortName']``: a column's field, sorted by that column's ``sortName``
    field when it has one), each with ``_offline_link_field``: the first column whose
    cell shows text and holds no link, where the row's page (``_table_row_link_path``)
    is linked (bootstrap-table made the whole row a link, with a script)."""
    out = [dict(r) for r in rows]
    by_field = {c["field"]: c for c in columns}
    sort_field = options.get("sortName")
    if sort_field:
        key = by_field.get(sort_field, {}).get("sortName", sort_field)
        out.sort(key=lambda r: _sort_key(r.get(key)), reverse=options.get("sortOrder") == "desc")
    for row in out:
        row["_offline_link_field"] = next(
            (c["field"] for c in columns if _plain_text(row.get(c["field"]))), None
        )
    return out


def _plain_text(cell: Any) -> bool:
    """A cell with visible text and no link of its own (a status icon has no text)."""
    html = str(cell or "")
    return "<a " not in html and bool(re.sub(r"<[^>]*>", "", html).strip())


def _sort_key(value: Any) -> tuple[int, Any]:
    # numbers before text, missing last; never compare a number with a string
    if value is None:
        return (2, "")
    if isinstance(value, int | float):
        return (0, value)
    return (1, str(value))


@pass_context
def _url_without_tracking(_context: Any, url: str, add_datetime: bool = True) -> str:
    """Replaces GX's add_data_context_id_to_url: the URL as written, no id, no time."""
    return url


class _OfflineLoader(BaseLoader):
    """GX's templates and stylesheets, passed through ``offline_source``."""

    def __init__(self, inner: BaseLoader) -> None:
        self.inner = inner

    def get_source(self, environment: Environment, template: str):
        source, filename, uptodate = self.inner.get_source(environment, template)
        return offline_source(source), filename, uptodate

    def list_templates(self) -> list[str]:
        return self.inner.list_templates()


def _make_offline(env: Environment) -> None:
    env.loader = ChoiceLoader([FileSystemLoader(str(TEMPLATES)), _OfflineLoader(env.loader)])
    env.filters["add_data_context_id_to_url"] = _url_without_tracking
    env.filters["offline_rows"] = offline_rows


class OfflinePageView(DefaultJinjaPageView):
    """Suite and validation-result pages, offline."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _make_offline(self.env)


class OfflineIndexPageView(DefaultJinjaIndexPageView):
    """The index page, offline, its tables rendered with their rows."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _make_offline(self.env)


def scrub_stylesheets(docs_dir: Path) -> list[Path]:
    """GX copies its stylesheets into the site's ``static/`` on every build, the vendor's
    logo url() included. No page links them (they inline their styles), but the copies
    are passed through ``offline_source`` too, so no file of the site names an outside
    host to load. Returns the files rewritten."""
    changed = []
    for path in sorted(docs_dir.glob("static/**/*.css")):
        text = path.read_text()
        if (clean := offline_source(text)) != text:
            path.write_text(clean)
            changed.append(path)
    return changed


def site_config(docs_dir: Path) -> dict[str, Any]:
    """A local Data Docs site at ``docs_dir`` rendered by the offline views."""

    def view(class_name: str) -> dict[str, str]:
        return {"module_name": __name__, "class_name": class_name}

    return {
        "class_name": "SiteBuilder",
        # the how-to buttons and call-to-action footer link to the vendor's docs
        "show_how_to_buttons": False,
        "site_index_builder": {
            "class_name": "DefaultSiteIndexBuilder",
            "view": view("OfflineIndexPageView"),
        },
        "site_section_builders": {
            section: {"view": view("OfflinePageView")}
            for section in ("expectations", "validations", "profiling")
        },
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(docs_dir),
        },
    }
