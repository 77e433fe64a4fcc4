"""The file manager's pages: client folders, upload, search, preview and download.

Progressive by design: the upload is a plain multipart form that works without JavaScript;
`static/files.js` (no inline script, the CSP forbids it) turns the folder into a drop zone and
posts the same form with `fetch`, asking for JSON. Previews are served inline with the sniffed
type, and only for PDFs and images, after the same permission check as a download; a record the
user may not see answers 404, never 403. Deleting a file is the kernel's route
(`POST /attachments/<id>/delete`, which checks again); the pages offer it only where that
route would allow it, and never for an offer's PDF as sent (`files.deletable_ids`).

The "Files" menu entry is added when the blueprint is registered (`bp.record`), so this module
needs no line in the addon's `init_app`.
"""
from __future__ import annotations

import logging
from typing import Any

from flask import abort, flash, jsonify, redirect, render_template, request, send_file, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from markupsafe import Markup

from addons.contacts.models import Partner
from core.api import AttachmentRefused, addon_enabled, db, get_or_404, permission_required
from core.storage import Attachment, clean_filename, human_size

from . import files
from .models import Offer
from .views import bp

log = logging.getLogger(__name__)


@bp.record
def _register_menu(state: Any) -> None:
    registry = state.app.extensions["birga"].registry
    if "documents.files" not in registry.menus:
        registry.add_menu("documents.files", _l("Files"), "documents.files",
                          parent="documents", sequence=40, permission="documents.read",
                          addon="documents")


@bp.record
def _register_card_panel(state: Any) -> None:
    state.app.extensions["birga"].registry.add_hook(
        "contacts.card.sidebar", render_card_files, sequence=40, addon="documents")


def render_card_files(partner: Any = None, **_ctx: Any) -> Markup:
    """`contacts.card.sidebar`: how many files the client's folder holds, and a link to it."""
    if partner is None or not current_user.is_authenticated \
            or not current_user.has_permission("documents.read"):
        return Markup("")
    count = files.folder_count(files.folder_records(partner))
    return Markup(render_template(  # noqa: S704 - an autoescaped template we render
        "documents/file_card_panel.html", partner=partner, count=count))


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


@bp.route("/files", endpoint="files")
@permission_required("documents.read")
def files_index():
    """Client folders, or the files whose name matches `q` across every client."""
    query = (request.args.get("q") or "").strip()
    results = files.search_files(query) if query else []
    folders = files.client_folders(request.args.get("client") or "")
    return render_template("documents/files.html", query=query, results=results,
                           folders=folders, human_size=human_size,
                           can_preview=files.can_preview, owners=_owners(results),
                           deletable=files.deletable_ids(results, current_user),
                           next_url=request.full_path.rstrip("?"))


def _owners(rows: list[Attachment]) -> dict[tuple[str, int], str]:
    """A label for the record each search hit hangs off (one query per model)."""
    labels: dict[tuple[str, int], str] = {}
    partner_ids = {a.record_id for a in rows if a.model == files.PARTNER}
    if partner_ids:
        for partner_id, name in db.session.execute(
                db.select(Partner.id, Partner.name).where(Partner.id.in_(partner_ids))):
            labels[(files.PARTNER, partner_id)] = name
    offer_ids = {a.record_id for a in rows if a.model == files.OFFER}
    if offer_ids:
        from .offers import display_number

        for offer in db.session.scalars(db.select(Offer).where(Offer.id.in_(offer_ids))):
            labels[(files.OFFER, offer.id)] = _("Offer %(number)s",
                                                number=display_number(offer))
    deal_ids = {a.record_id for a in rows if a.model == files.DEAL}
    if deal_ids and addon_enabled("pipeline"):
        deal = files._deal_model()
        for deal_id, title in db.session.execute(
                db.select(deal.id, deal.title).where(deal.id.in_(deal_ids))):
            labels[(files.DEAL, deal_id)] = title
    return labels


@bp.route("/files/client/<int:partner_id>")
@permission_required("documents.read")
def files_folder(partner_id: int):
    partner = get_or_404(Partner, partner_id)
    records = files.folder_records(partner)
    query = (request.args.get("q") or "").strip()
    rows = files.folder_files(records, query)
    labels = {(r.model, r.record_id): r.label for r in records}
    return render_template("documents/file_folder.html", partner=partner, records=records,
                           files=rows, labels=labels, query=query, human_size=human_size,
                           can_preview=files.can_preview,
                           can_write=current_user.has_permission("documents.write"),
                           deletable=files.deletable_ids(rows, current_user),
                           next_url=request.full_path.rstrip("?"))


@bp.route("/files/client/<int:partner_id>/upload", methods=["POST"])
@permission_required("documents.write")
def files_upload(partner_id: int):
    """Files go to the chosen record of the folder (the client itself by default)."""
    partner = get_or_404(Partner, partner_id)
    records = {r.key: r for r in files.folder_records(partner)}
    target = records.get(request.form.get("target") or f"{files.PARTNER}:{partner.id}")
    if target is None:
        abort(404)
    back = url_for("documents.files_folder", partner_id=partner.id)
    uploads = [f for f in request.files.getlist("file") if f and f.filename]
    if not uploads:
        message = _("Choose a file to upload.")
        if _wants_json():
            return jsonify(ok=False, error=message), 400
        flash(message, "error")
        return redirect(back)
    saved: list[Attachment] = []
    current = uploads[0]
    try:
        for current in uploads:
            saved.append(files.upload(target, current.stream, current.filename, current_user))
        db.session.commit()
    except AttachmentRefused as exc:
        db.session.rollback()
        message = _("%(name)s was not uploaded: %(reason)s",
                    name=clean_filename(current.filename), reason=str(exc))
        if _wants_json():
            return jsonify(ok=False, error=message), 422
        flash(message, "error")
        return redirect(back)
    if _wants_json():
        return jsonify(ok=True, files=[{"id": a.id, "name": a.filename} for a in saved])
    flash(_("Uploaded."), "success")
    return redirect(back)


def _readable_or_404(attachment_id: int) -> Attachment:
    row = files.readable_attachment(attachment_id)
    if row is None:
        abort(404)
    if not row.path.is_file():
        log.error("attachment %s has no file at %s", row.id, row.path)
        abort(404)
    return row


@bp.route("/files/<int:attachment_id>/preview")
@permission_required("documents.read")
def files_preview(attachment_id: int):
    row = _readable_or_404(attachment_id)
    return render_template("documents/file_preview.html", file=row, human_size=human_size,
                           previewable=files.can_preview(row))


@bp.route("/files/<int:attachment_id>/inline")
@permission_required("documents.read")
def files_inline(attachment_id: int):
    """The bytes for the preview: inline only for PDFs and images, with the sniffed type."""
    row = _readable_or_404(attachment_id)
    if not files.can_preview(row):
        abort(404)
    response = send_file(row.path, mimetype=row.content_type, as_attachment=False,
                         download_name=row.filename, etag=row.sha256, max_age=0,
                         conditional=True)
    response.headers["Cache-Control"] = "private, max-age=0"
    # An inline file must not run anything even if a browser misjudged it.
    response.headers["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; " \
        "style-src 'unsafe-inline'; object-src 'self'; frame-ancestors 'self'"
    return response


@bp.route("/files/<int:attachment_id>/download")
@permission_required("documents.read")
def files_download(attachment_id: int):
    row = _readable_or_404(attachment_id)
    response = send_file(row.path, mimetype=row.content_type, as_attachment=True,
                         download_name=row.filename, etag=row.sha256, max_age=0,
                         conditional=True)
    response.headers["Cache-Control"] = "private, max-age=0"
    return response
