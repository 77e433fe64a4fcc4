"""The template editor and generic documents (contracts, letters).

- Editing (`documents.template_edit`): HTML and CSS side by side; every save is a new
  `TemplateVersion` (optimistic: the form carries the version it was loaded at, a stale save is
  refused, never merged), and any version can be restored by a revert that is itself a new
  version, so history only grows.
- Preview against a real record the user chooses (and may see: `get_or_404` applies the record
  rules). The draft is posted to the preview with `formaction`/`formtarget` on a button, so the
  iframe updates without JavaScript; the HTML preview is served with a CSP `sandbox` of its own,
  and the PDF preview goes through the same fetcher as real documents.
- Generic templates are filled from any field of the person, their company and, only when the
  pipeline addon is enabled, the deal (`addons.pipeline.models` imported lazily: documents has
  no hard dependency on pipeline).
- Before a PDF whose text the fonts cannot draw is produced, the user is warned and must
  confirm (`missing_glyphs`).
"""
from __future__ import annotations

import io
from functools import cache
from typing import Any

from flask import (
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import select

from addons.contacts.models import Partner
from core.api import addon_enabled, db, get_or_404, permission_required, visible
from core.i18n import LANGUAGES

from . import default_templates
from .models import DocumentTemplate, Offer, TemplateVersion
from .pdf import PdfError, glyph_warning, html_to_pdf, missing_glyphs
from .sandbox import TemplateRenderError, generic_context, offer_context, render_document
from .views import bp

SUBJECTS = ("offer", "partner", "deal")
KINDS = {"contract": _l("Contract"), "letter": _l("Letter"), "offer": _l("Commercial offer")}
PREVIEW_CSP = ("default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
               "font-src 'self' data:; sandbox")


class StaleTemplate(Exception):  # noqa: N818
    """Someone saved the template since this form was loaded."""


@bp.record
def _register_menu(state: Any) -> None:
    registry = state.app.extensions["birga"].registry
    if "documents.templates" not in registry.menus:
        registry.add_menu("documents.templates", _l("Templates"), "documents.templates",
                          parent="documents", sequence=50,
                          permission="documents.template_edit", addon="documents")


# -- services ------------------------------------------------------------------------------------
def ensure_defaults() -> list[DocumentTemplate]:
    return [default_templates.ensure_default(code) for code in default_templates.DEFAULTS]


def save_version(template: DocumentTemplate, html: str, css: str, *, based_on: int | None,
                 author: Any = None) -> TemplateVersion:
    """Store a new version and make it current; `based_on` must be the current version."""
    if based_on is not None and based_on != template.version:
        raise StaleTemplate
    latest = db.session.scalar(select(db.func.max(TemplateVersion.version))
                               .where(TemplateVersion.template_id == template.id)) or 0
    version = TemplateVersion(template_id=template.id, version=latest + 1, html=html, css=css,
                              author_id=getattr(author, "id", None))
    db.session.add(version)
    template.html, template.css, template.version = html, css, latest + 1
    db.session.flush()
    return version


def revert_to(template: DocumentTemplate, number: int, *, author: Any = None) -> TemplateVersion:
    """Restore an old version's text as a NEW version (the history is never rewritten)."""
    old = db.session.scalar(select(TemplateVersion).where(
        TemplateVersion.template_id == template.id, TemplateVersion.version == number))
    if old is None:
        abort(404)
    return save_version(template, old.html, old.css, based_on=None, author=author)


def versions_of(template: DocumentTemplate) -> list[TemplateVersion]:
    return list(db.session.scalars(select(TemplateVersion)
                                   .where(TemplateVersion.template_id == template.id)
                                   .order_by(TemplateVersion.version.desc())))


def _deal_model() -> Any:
    from addons.pipeline.models import Deal  # lazily: only when pipeline is enabled
    return Deal


def record_choices(subject: str, limit: int = 200) -> list[tuple[int, str]]:
    """Records the user may see, to preview a template against."""
    if subject == "offer":
        rows = db.session.scalars(visible(Offer).order_by(Offer.id.desc()).limit(limit))
        names = dict(db.session.execute(select(Partner.id, Partner.name)).all())
        return [(o.id, f"{o.number or '#' + str(o.id)} — {names.get(o.partner_id, '')}")
                for o in rows]
    if subject == "deal":
        if not addon_enabled("pipeline"):
            return []
        deal = _deal_model()
        return [(d.id, d.title) for d in db.session.scalars(
            visible(deal).order_by(deal.id.desc()).limit(limit))]
    return [(p.id, p.name) for p in db.session.scalars(
        visible(Partner).order_by(Partner.name).limit(limit))]


def context_for(subject: str, record_id: int) -> dict[str, Any]:
    """Plain data for `subject` #record_id, after the user's record rules (404 otherwise)."""
    if subject == "offer":
        return offer_context(get_or_404(Offer, record_id))
    if subject == "deal":
        if not addon_enabled("pipeline"):
            abort(404)
        deal = get_or_404(_deal_model(), record_id)
        partner_id = deal.partner_id or deal.company_id
        partner = get_or_404(Partner, partner_id) if partner_id else None
        return generic_context(partner=partner, deal=deal)
    return generic_context(partner=get_or_404(Partner, record_id))


def _lang_of(data: dict[str, Any]) -> str:
    return str(data.get("lang") or "en")


# -- printing from the client card and the deal ----------------------------------------------
def printable(subject: str) -> list[DocumentTemplate]:
    """Active contract and letter templates filled from a `subject` ("partner", "deal").
    `birga init` seeds the shipped ones (`seed.py`); a database set up before that seed
    gets them (committed) the first time a page asks, so a firm prints a contract before
    anyone has opened the template editor."""
    query = select(DocumentTemplate).where(DocumentTemplate.subject == subject,
                                           DocumentTemplate.kind != "offer")
    rows = db.session.scalars(query).all()
    shipped = [code for code, (_kind, subj, *_rest) in default_templates.DEFAULTS.items()
               if subj == subject and code != "offer"]
    if not rows and shipped:
        for code in shipped:
            default_templates.ensure_default(code)
        db.session.commit()
        rows = db.session.scalars(query).all()
    return sorted((t for t in rows if t.active), key=lambda t: template_title(t).lower())


def template_title(template: DocumentTemplate) -> str:
    """A shipped template's title in the reader's language while its name is still the one
    it was seeded with (in whichever language that was); the name an editor gave it
    otherwise."""
    default = default_templates.DEFAULTS.get(template.code)
    if default is not None and (not template.name
                                or template.name in _seeded_names(template.code)):
        return str(default[4])
    return template.name


@cache
def _seeded_names(code: str) -> frozenset[str]:
    title = default_templates.DEFAULTS[code][4]
    names = set()
    for language in LANGUAGES:
        with force_locale(language):
            names.add(str(title))
    return frozenset(names)


def _print_panel(subject: str, record_id: int) -> Markup:
    if not current_user.is_authenticated or not current_user.has_permission("documents.read"):
        return Markup("")
    templates = printable(subject)
    if not templates:
        return Markup("")
    return Markup(render_template(  # noqa: S704 - an autoescaped template we render
        "documents/print_panel.html", templates=templates, record=record_id,
        title=template_title))


def render_partner_print(partner: Any = None, **_ctx: Any) -> Markup:
    """`contacts.card.sidebar`: contracts and letters filled from this client's card."""
    return Markup("") if partner is None else _print_panel("partner", partner.id)


def render_deal_print(deal: Any = None, **_ctx: Any) -> Markup:
    """`pipeline.deal.main` (with pipeline enabled): documents filled from the deal."""
    return Markup("") if deal is None else _print_panel("deal", deal.id)


# -- pages ---------------------------------------------------------------------------------------
@bp.route("/templates", endpoint="templates")
@permission_required("documents.template_edit")
def templates_index():
    ensure_defaults()
    db.session.commit()
    rows = db.session.scalars(select(DocumentTemplate).order_by(DocumentTemplate.kind,
                                                                DocumentTemplate.name)).all()
    return render_template("documents/templates.html", templates=rows, kinds=KINDS,
                           subjects=_subject_labels())


def _subject_labels() -> dict[str, Any]:
    labels = {"offer": _("Offer"), "partner": _("Person or company")}
    if addon_enabled("pipeline"):
        labels["deal"] = _("Deal")
    return labels


@bp.route("/templates/new", methods=["POST"], endpoint="template_new")
@permission_required("documents.template_edit")
def template_new():
    kind = request.form.get("kind", "contract")
    subject = request.form.get("subject", "partner")
    name = (request.form.get("name") or "").strip()
    if kind not in KINDS or subject not in _subject_labels() or not name:
        flash(_("Give the template a name, a kind and what it is filled from."), "error")
        return redirect(url_for("documents.templates"))
    html, css = default_templates.source(kind if kind in default_templates.DEFAULTS
                                         else "letter")
    code = f"{kind}.{db.session.scalar(select(db.func.count(DocumentTemplate.id))) + 1}"
    row = DocumentTemplate(code=code, name=name, kind=kind, subject=subject, html="", css="",
                           version=0, active=True)
    db.session.add(row)
    db.session.flush()
    save_version(row, html, css, based_on=0, author=current_user)
    db.session.commit()
    return redirect(url_for("documents.template_edit", template_id=row.id))


@bp.route("/templates/<int:template_id>", methods=["GET", "POST"], endpoint="template_edit")
@permission_required("documents.template_edit")
def template_edit(template_id: int):
    template = db.get_or_404(DocumentTemplate, template_id)
    html, css = template.html, template.css
    if request.method == "POST":
        html = request.form.get("html", "")
        css = request.form.get("css", "")
        try:
            based_on = int(request.form.get("version", ""))
        except ValueError:
            abort(400)
        error = _check(html, css, template.subject)
        if error:
            flash(error, "error")
        else:
            try:
                version = save_version(template, html, css, based_on=based_on,
                                       author=current_user)
            except StaleTemplate:
                db.session.rollback()
                flash(_("Someone saved this template in the meantime. Your text is below; "
                        "reload to see theirs before saving again."), "error")
            else:
                db.session.commit()
                flash(_("Version %(number)s saved.", number=version.version), "success")
                return redirect(url_for("documents.template_edit", template_id=template.id,
                                        record=request.form.get("record") or None))
    choices = record_choices(template.subject)
    record = request.values.get("record", type=int) or (choices[0][0] if choices else None)
    warning = None
    if record is not None and request.method == "GET":
        warning = _glyph_warning_for(template.html, template.css, template.subject, record)
    return render_template("documents/template_edit.html", template=template, html=html,
                           css=css, versions=versions_of(template), choices=choices,
                           record=record, warning=warning)


def _check(html: str, css: str, subject: str) -> str | None:
    """A translated error if the template does not render with sample data, else None."""
    choices = record_choices(subject, limit=1)
    if not choices:
        return None
    data = context_for(subject, choices[0][0])
    try:
        render_document(html, css, data, _lang_of(data))
    except TemplateRenderError as exc:
        return str(exc)
    return None


def _glyph_warning_for(html: str, css: str, subject: str, record: int) -> str | None:
    data = context_for(subject, record)
    try:
        final = render_document(html, css, data, _lang_of(data))
    except TemplateRenderError as exc:
        return str(exc)
    missing = missing_glyphs(final)
    return glyph_warning(missing) if missing else None


@bp.route("/templates/<int:template_id>/preview", methods=["GET", "POST"],
          endpoint="template_preview")
@permission_required("documents.template_edit")
def template_preview(template_id: int):
    """The template (saved, or the draft posted from the editor) rendered for one record."""
    template = db.get_or_404(DocumentTemplate, template_id)
    record = request.values.get("record", type=int)
    if record is None:
        abort(404)
    html = request.form.get("html", template.html) if request.method == "POST" else template.html
    css = request.form.get("css", template.css) if request.method == "POST" else template.css
    data = context_for(template.subject, record)
    try:
        final = render_document(html, css, data, _lang_of(data))
    except TemplateRenderError as exc:
        return _preview_error(str(exc))
    if request.values.get("format") == "pdf":
        return _pdf_response(final, f"{template.code}-{record}.pdf", inline=True)
    missing = missing_glyphs(final)
    if missing:
        banner = ('<p style="background:#fff3cd;padding:6px;font-family:sans-serif">'
                  + str(_escape(glyph_warning(missing))) + "</p>")
        final = final.replace("<body>", "<body>" + banner, 1)
    response = make_response(final)
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    return response


def _escape(text: str) -> Any:
    from markupsafe import escape
    return escape(text)


def _preview_error(message: str) -> Any:
    response = make_response('<!DOCTYPE html><html><body><p style="color:#a00;font-family:'
                             'sans-serif">' + str(_escape(message)) + "</p></body></html>", 422)
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    return response


def _pdf_response(final_html: str, filename: str, *, inline: bool) -> Any:
    try:
        result = html_to_pdf(final_html)
    except PdfError as exc:
        return _preview_error(str(exc))
    # Werkzeug writes the header: an ASCII `filename` and an RFC 5987 `filename*` for
    # "Черновик-№-8.pdf" (a raw non-Latin-1 header makes the server drop the response).
    return send_file(io.BytesIO(result.pdf), mimetype="application/pdf",
                     as_attachment=not inline, download_name=filename, max_age=0)


@bp.route("/templates/<int:template_id>/revert/<int:number>", methods=["POST"],
          endpoint="template_revert")
@permission_required("documents.template_edit")
def template_revert(template_id: int, number: int):
    template = db.get_or_404(DocumentTemplate, template_id)
    version = revert_to(template, number, author=current_user)
    db.session.commit()
    flash(_("Version %(old)s restored as version %(new)s.", old=number, new=version.version),
          "success")
    return redirect(url_for("documents.template_edit", template_id=template.id))


@bp.route("/templates/<int:template_id>/print", endpoint="template_print")
@permission_required("documents.read")
def template_print(template_id: int):
    """A contract or letter (or an offer) as a PDF for a record the user may see; warns first
    when the fonts lack characters of the text, and prints only once confirmed."""
    template = db.get_or_404(DocumentTemplate, template_id)
    record = request.args.get("record", type=int)
    if record is None or not template.active:
        abort(404)
    data = context_for(template.subject, record)
    try:
        final = render_document(template.html, template.css, data, _lang_of(data))
    except TemplateRenderError as exc:
        flash(str(exc), "error")
        return render_template("documents/template_glyphs.html", template=template,
                               record=record, warning=None), 422
    missing = missing_glyphs(final)
    if missing and request.args.get("confirm") != "1":
        return render_template("documents/template_glyphs.html", template=template,
                               record=record, warning=glyph_warning(missing))
    return _pdf_response(final, f"{template.code}-{record}.pdf", inline=False)


# -- the offer's own PDF and preview ---------------------------------------------------------
@bp.route("/offers/<int:offer_id>/preview", endpoint="offer_preview")
@permission_required("documents.read")
def offer_preview(offer_id: int):
    """The offer as it will print, as HTML (for an iframe on the offer page)."""
    offer = get_or_404(Offer, offer_id)
    template = default_templates.template_for_offer(offer)
    data = offer_context(offer)
    try:
        final = render_document(template.html, template.css, data, _lang_of(data))
    except TemplateRenderError as exc:
        return _preview_error(str(exc))
    response = make_response(final)
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    return response


@bp.route("/offers/<int:offer_id>/offer.pdf", endpoint="offer_pdf")
@permission_required("documents.read")
def offer_pdf(offer_id: int):
    """The offer's PDF rendered now; a warning page first when the fonts lack characters.
    (What the client received is `sent.pdf`, stored byte for byte when it was sent.)"""
    offer = get_or_404(Offer, offer_id)
    template = default_templates.template_for_offer(offer)
    data = offer_context(offer)
    try:
        final = render_document(template.html, template.css, data, _lang_of(data))
    except TemplateRenderError as exc:
        return render_template("documents/offer_pdf_warning.html", offer=offer,
                               number=data["offer"]["number"], warning=str(exc),
                               can_force=False), 422
    missing = missing_glyphs(final)
    if missing and request.args.get("confirm") != "1":
        return render_template("documents/offer_pdf_warning.html", offer=offer,
                               number=data["offer"]["number"],
                               warning=glyph_warning(missing), can_force=True)
    filename = str(data["offer"]["number"]).replace("/", "-").replace(" ", "-") + ".pdf"
    return _pdf_response(final, filename, inline=request.args.get("inline") == "1")
