"""HTML to PDF with WeasyPrint, fetching nothing but our own assets.

A user-edited template could ask WeasyPrint for `file:///etc/passwd`, `http://127.0.0.1:6379/`
or a cloud metadata URL (SSRF). Our `url_fetcher` serves only files under the `static/`
folders of core and of this addon (addressed as `/static/...` and `/documents/static/...`)
and `data:` URLs; anything else is refused before any connection or file read, recorded,
and the render then fails with a translated `ResourceRefused` naming the URLs.

Fonts: the default CSS sets DejaVu Sans on `body` and on `@page` (otherwise the page-number
footer, which lives in the page margin box, is laid out with another font and that font is
embedded too). `missing_glyphs()` reads the cmap of the fonts the CSS names (fontTools) and
reports characters they lack, so the editor and the offer page can warn BEFORE a PDF with
empty boxes is produced. Debian's `libharfbuzz-subset0` makes font subsetting fast
(~160 ms vs ~460 ms for a page); `harfbuzz_subset_available()` lets the set-up check it.
"""
from __future__ import annotations

import ctypes.util
import logging
import mimetypes
import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from flask_babel import gettext as _

log = logging.getLogger(__name__)

#: The base URL documents are rendered against; relative `/static/x` resolves onto it.
BASE_URL = "https://assets.birga.invalid/"
_ASSET_HOST = "assets.birga.invalid"
CORE_STATIC = Path(__file__).resolve().parents[2] / "core" / "static"
ADDON_STATIC = Path(__file__).resolve().parent / "static"
ASSET_ROOTS = {"/static/": CORE_STATIC, "/documents/static/": ADDON_STATIC}
DEFAULT_FONTS = ("DejaVu Sans",)


class PdfError(Exception):
    """A PDF that could not be produced; `str()` is a translated message."""


class ResourceRefused(PdfError):  # noqa: N818 - reads better at the call site
    def __init__(self, urls: list[str]) -> None:
        self.urls = urls
        super().__init__(_("The template asked for resources documents may not load "
                           "(only our own images and data: URLs are allowed): %(urls)s",
                           urls=", ".join(urls)))


class FetchRefused(Exception):  # noqa: N818
    """Raised inside WeasyPrint's fetch; WeasyPrint logs it and goes on without the resource."""


def _asset_path(url: str) -> Path | None:
    parts = urlsplit(url)
    if parts.scheme != "https" or parts.netloc != _ASSET_HOST or parts.query:
        return None
    path = unquote(parts.path)
    for prefix, root in ASSET_ROOTS.items():
        if path.startswith(prefix):
            candidate = (root / path[len(prefix):]).resolve()
            if candidate.is_relative_to(root.resolve()) and candidate.is_file():
                return candidate
    return None


def _fetcher_class() -> type:
    """WeasyPrint 70 takes a `URLFetcher` subclass; built lazily so importing this module
    does not load WeasyPrint (and Pango) for pages that never print."""
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class Fetcher(URLFetcher):
        """Serves our static files and `data:` URLs; refuses the rest before any I/O."""

        def __init__(self) -> None:
            # fail_on_errors: a refused URL stops the render at once (nothing half-printed).
            super().__init__(allowed_protocols=("data", "https"), allow_redirects=False,
                             fail_on_errors=True)
            self.refused: list[str] = []

        def fetch(self, url: str, headers: Any = None) -> Any:
            if url.startswith("data:"):
                return super().fetch(url, headers)  # decoded in memory by urllib's DataHandler
            path = _asset_path(url)
            if path is None:
                self.refused.append(url)
                raise FetchRefused(url)
            mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": mime})

    return Fetcher


def make_fetcher() -> Any:
    return _fetcher_class()()


# -- glyph coverage ----------------------------------------------------------------------------
_STYLE_RE = re.compile(r"<style[^>]*>(.*?)</style>", re.S | re.I)
_HIDDEN_RE = re.compile(r"<(style|script|title)[^>]*>.*?</\1\s*>", re.S | re.I)
_TAG_RE = re.compile(r"<[^>]*>")
_FAMILY_RE = re.compile(r"font-family\s*:\s*([^;}]+)", re.I)
_CONTENT_RE = re.compile(r"content\s*:\s*([^;}]+)", re.I)
_GENERIC = {"serif", "sans-serif", "monospace", "cursive", "fantasy", "system-ui", "inherit",
            "initial"}


def css_families(css: str) -> list[str]:
    """Font families named in the CSS, in order, without generic names."""
    seen: list[str] = []
    for decl in _FAMILY_RE.findall(css):
        for name in decl.split(","):
            name = name.strip().strip("'\"").strip()
            if name and name.lower() not in _GENERIC and name not in seen:
                seen.append(name)
    return seen


@lru_cache(maxsize=64)
def font_file(family: str) -> str | None:
    """The file fontconfig uses for `family`, or None when it only has a substitute."""
    try:
        out = subprocess.run(["fc-match", "-f", "%{family}\n%{file}", family],  # noqa: S607
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    lines = out.splitlines()
    if len(lines) < 2:
        return None
    matched = [f.strip().lower() for f in lines[0].split(",")]
    return lines[1] if family.lower() in matched else None


@lru_cache(maxsize=64)
def _cmap(path: str) -> frozenset[int]:
    from fontTools.ttLib import TTFont
    with TTFont(path, lazy=True, fontNumber=0) as font:
        return frozenset(font.getBestCmap() or {})


@lru_cache(maxsize=32)
def covered(families: tuple[str, ...]) -> frozenset[int]:
    codes: set[int] = set()
    for family in families:
        path = font_file(family)
        if path:
            codes |= _cmap(path)
    return frozenset(codes)


def document_text(html: str) -> str:
    """Visible text of a document plus the strings its CSS prints (`content: "Page"`)."""
    css = " ".join(_STYLE_RE.findall(html))
    quoted = " ".join(" ".join(re.findall(r'"([^"]*)"', c)) for c in _CONTENT_RE.findall(css))
    body = _TAG_RE.sub(" ", _HIDDEN_RE.sub(" ", html))
    return unescape(body) + " " + quoted


def missing_glyphs(html: str) -> str:
    """Characters of the document that none of the fonts its CSS names can draw, in order."""
    css = " ".join(_STYLE_RE.findall(html))
    families = css_families(css) or list(DEFAULT_FONTS)
    codes = covered(tuple(families))
    text = document_text(html)
    lacking = {c for c in set(text) if not c.isspace() and ord(c) >= 32 and ord(c) not in codes}
    return "".join(sorted(lacking, key=text.index))


def glyph_warning(missing: str) -> str:
    return _("The document's fonts cannot draw these characters, the PDF would show empty "
             "boxes: %(chars)s", chars=" ".join(missing))


def harfbuzz_subset_available() -> bool:
    """WeasyPrint subsets fonts fast only with Debian's `libharfbuzz-subset0`."""
    return ctypes.util.find_library("harfbuzz-subset") is not None


# -- rendering ---------------------------------------------------------------------------------
@dataclass
class PdfResult:
    pdf: bytes
    #: Characters the fonts lack (empty when all are covered); the caller shows the warning.
    missing_glyphs: str = ""


def html_to_pdf(html: str, *, check_glyphs: bool = True) -> PdfResult:
    """Render the final document HTML; refuse it whole if it asked for a foreign resource."""
    from weasyprint import HTML

    missing = missing_glyphs(html) if check_glyphs else ""
    if missing:
        log.warning("PDF with characters the fonts lack: %r", missing)
    from weasyprint.urls import FatalURLFetchingError

    fetcher = make_fetcher()
    try:
        pdf = HTML(string=html, base_url=BASE_URL, url_fetcher=fetcher).write_pdf()
    except FatalURLFetchingError:
        if fetcher.refused:
            raise ResourceRefused(fetcher.refused) from None
        raise PdfError(_("An image or style sheet of the document could not be read.")) from None
    if fetcher.refused:  # pragma: no cover - fail_on_errors stops at the first one
        raise ResourceRefused(fetcher.refused)
    return PdfResult(pdf=pdf, missing_glyphs=missing)


def render_offer_html(offer: Any, template: Any = None) -> str:
    """The final HTML of an offer (its template, or the default one) in its language."""
    from .default_templates import template_for_offer
    from .sandbox import offer_context, render_document

    template = template or template_for_offer(offer)
    return render_document(template.html, template.css, offer_context(offer), offer.lang)


def render_offer_pdf(offer: Any, template: Any = None) -> PdfResult:
    """The offer's PDF; `missing_glyphs` tells the caller to warn the user."""
    return html_to_pdf(render_offer_html(offer, template))
