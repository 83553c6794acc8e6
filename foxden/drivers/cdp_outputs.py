"""What a CDP job hands back beyond its summary: html, screenshot clips, pdf, response headers."""
from __future__ import annotations

import json
import math

__all__ = ["summary_expression", "element_box_expression", "full_page_clip", "element_clip",
           "lower_headers", "SELECTOR_MISSING"]

# A page's JavaScript may replace these globals; the summary reads them anyway,
# as Playwright's page.title() and page.url would. responseStatus is the main
# document's HTTP status (0 for about:blank, which has no response).
_SUMMARY = ("[document.title || '', document.documentElement ? document.documentElement.outerHTML.length : 0, "
            "location.href, ((performance.getEntriesByType('navigation')[0] || {}).responseStatus) || 0")
# The serialized DOM as Playwright's page.content() gives it: the doctype, then the root element.
_HTML = (", (document.doctype ? new XMLSerializer().serializeToString(document.doctype) : '')"
         " + (document.documentElement ? document.documentElement.outerHTML : '')")


def summary_expression(html: bool) -> str:
    """[title, length, url, status] (and the serialized DOM with `html`), in one evaluation."""
    return _SUMMARY + (_HTML if html else "") + "]"


SELECTOR_MISSING = "__foxden_no_element__"

# The element's box in page coordinates (scrolled into view first, so lazy
# content under it is laid out); a selector that does not parse throws.
_ELEMENT_BOX = """(() => {
  const el = document.querySelector(%s);
  if (!el) return '%s';
  el.scrollIntoView({block: 'center', inline: 'center'});
  const r = el.getBoundingClientRect();
  return [r.left + window.scrollX, r.top + window.scrollY, r.width, r.height];
})()"""


def element_box_expression(selector: str) -> str:
    """The expression that gives [x, y, width, height] of the first element matching `selector`."""
    return _ELEMENT_BOX % (json.dumps(selector), SELECTOR_MISSING)


def full_page_clip(metrics: dict) -> dict:
    """Page.captureScreenshot's clip for the whole page, from Page.getLayoutMetrics (CSS pixels)."""
    size = metrics.get("cssContentSize") or metrics.get("contentSize") or {}
    width = max(1, math.ceil(size.get("width", 1)))
    height = max(1, math.ceil(size.get("height", 1)))
    return {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}


def element_clip(box) -> dict | None:
    """The clip of an element's box (x, y, width, height); None for an element with no area (or no box:
    the page's own script may have replaced getBoundingClientRect)."""
    try:
        x, y, width, height = (float(v or 0) for v in box)
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) for v in (x, y, width, height)):
        return None
    left, top = math.floor(x), math.floor(y)
    right, bottom = math.ceil(x + width), math.ceil(y + height)
    if right <= left or bottom <= top or width <= 0 or height <= 0:
        return None
    return {"x": left, "y": top, "width": right - left, "height": bottom - top, "scale": 1}


def lower_headers(headers: dict | None) -> dict | None:
    """Response headers with lower-case names (CDP joins a repeated header's values with newlines)."""
    if headers is None:
        return None
    return {str(k).lower(): str(v) for k, v in headers.items()}
