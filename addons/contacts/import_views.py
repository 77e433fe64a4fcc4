"""The import pages: upload, map columns, check (dry run), import, follow progress, download
the rejected rows, revert.

Everything works without JavaScript: the progress page refreshes itself with a meta refresh
while a background import runs. A batch is seen only by the user who uploaded it (and
administrators): it holds a whole file of someone's contacts.
"""
from __future__ import annotations

import csv
import io

from flask import Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from core.api import db, permission_required

from .duplicates import REASONS
from .importing import runner
from .importing.mapping import MATCH_KEYS, field_choices, message
from .importing.models import ImportBatch, ImportMapping, ImportRowError
from .importing.parsing import DELIMITERS, ENCODINGS, ParseError
from .importing.uploads import create_batch, reread
from .views import bp

#: Largest file accepted (bytes); 100k contacts as CSV are about 10 MB.
MAX_UPLOAD = 50 * 1024 * 1024


def _batch(batch_id: int) -> ImportBatch:
    batch = db.session.get(ImportBatch, batch_id)
    if batch is None or (batch.user_id != current_user.id
                          and not current_user.has_permission("core.admin")):
        abort(404)
    return batch


def _saved_mappings() -> list[ImportMapping]:
    return list(db.session.scalars(select(ImportMapping).where(
        ImportMapping.user_id == current_user.id).order_by(ImportMapping.name)))


@bp.route("/import", methods=["GET", "POST"])
@permission_required("contacts.import")
def import_upload():
    if request.method == "POST":
        upload = request.files.get("file")
        data = upload.read(MAX_UPLOAD + 1) if upload else b""
        if not data:
            flash(_("Choose a file to import."), "error")
        elif len(data) > MAX_UPLOAD:
            flash(_("The file is too big (at most %(size)s MB).", size=MAX_UPLOAD // 2**20),
                  "error")
        else:
            saved = None
            mapping_id = request.form.get("mapping_id", type=int)
            if mapping_id:
                saved = db.session.get(ImportMapping, mapping_id)
                if saved is None or saved.user_id != current_user.id:
                    abort(404)
            try:
                batch = create_batch(
                    data, upload.filename or "import.csv", user_id=current_user.id,
                    kind="company" if request.form.get("kind") == "company" else "person",
                    encoding=request.form.get("encoding") or None,
                    delimiter=_delimiter(request.form.get("delimiter")), saved=saved)
            except ParseError as exc:
                flash(message(exc.code, exc.params), "error")
            else:
                db.session.commit()
                return redirect(url_for("contacts.import_batch", batch_id=batch.id))
    recent = db.session.scalars(select(ImportBatch).where(
        ImportBatch.user_id == current_user.id).order_by(ImportBatch.id.desc()).limit(20))
    return render_template("contacts/import_upload.html", recent=list(recent),
                           saved=_saved_mappings(), encodings=ENCODINGS,
                           delimiters=DELIMITERS)


def _delimiter(value: str | None) -> str | None:
    if value == "tab":
        return "\t"
    return value if value in DELIMITERS else None


@bp.route("/import/<int:batch_id>", methods=["GET", "POST"])
@permission_required("contacts.import")
def import_batch(batch_id: int):
    batch = _batch(batch_id)
    editable = batch.state in ("new", "checked", "failed") or runner.is_stale(batch)
    if request.method == "POST":
        if not editable:
            abort(409)
        action = request.form.get("action")
        _read_options(batch)
        if action == "reread":
            try:
                reread(batch, encoding=request.form.get("encoding") or None,
                       delimiter=_delimiter(request.form.get("delimiter")))
            except ParseError as exc:
                db.session.rollback()
                flash(message(exc.code, exc.params), "error")
                return redirect(url_for("contacts.import_batch", batch_id=batch.id))
            db.session.commit()
            return redirect(url_for("contacts.import_batch", batch_id=batch.id))
        if action == "save_mapping":
            name = (request.form.get("mapping_name") or "").strip()[:120]
            if not name:
                flash(_("Give the mapping a name."), "error")
            else:
                _save_mapping(batch, name)
                flash(_("Mapping %(name)s saved.", name=name), "success")
            db.session.commit()
            return redirect(url_for("contacts.import_batch", batch_id=batch.id))
        if action in ("check", "run"):
            if not any(batch.mapping.values()):
                db.session.commit()
                flash(_("Map at least one column to a field."), "error")
                return redirect(url_for("contacts.import_batch", batch_id=batch.id))
            db.session.commit()
            runner.start(batch, dry_run=action == "check")
            return redirect(url_for("contacts.import_batch", batch_id=batch.id))
        abort(400)
    db.session.refresh(batch)
    kind = (batch.options or {}).get("kind", "person")
    errors = db.session.scalars(select(ImportRowError).where(
        ImportRowError.import_id == batch.id).order_by(ImportRowError.row_no).limit(50)).all()
    failure = message(batch.failure["code"], batch.failure.get("params")) \
        if batch.failure else None
    return render_template(
        "contacts/import.html", batch=batch, editable=editable, choices=field_choices(kind),
        match_keys=MATCH_KEYS, encodings=ENCODINGS, delimiters=DELIMITERS,
        errors=errors, message=message, failure=failure, stale=runner.is_stale(batch),
        running=batch.state in ("queued", "running") and not runner.is_stale(batch),
        result=batch.result or {}, reasons=REASONS)


def _read_options(batch: ImportBatch) -> None:
    """The mapping and options as the form sent them."""
    known = {key for key, _label in field_choices("person")} | {
        key for key, _label in field_choices("company")}
    mapping = {}
    for index in range(len(batch.columns or [])):
        key = request.form.get(f"map-{index}", "")
        if key in known:
            mapping[str(index)] = key
    if any(f"map-{i}" in request.form for i in range(len(batch.columns or []))):
        batch.mapping = mapping
    options = dict(batch.options or {})
    if "kind" in request.form:
        options["kind"] = "company" if request.form.get("kind") == "company" else "person"
        key = request.form.get("match_key", "")
        options["match_key"] = key if key in MATCH_KEYS else ""
        options["skip_duplicates"] = bool(request.form.get("skip_duplicates"))
        options["strict"] = bool(request.form.get("strict"))
    batch.options = options


def _save_mapping(batch: ImportBatch, name: str) -> None:
    fields = {batch.columns[int(i)]: key for i, key in (batch.mapping or {}).items()
              if key and int(i) < len(batch.columns)}
    saved = db.session.scalar(select(ImportMapping).where(
        ImportMapping.user_id == current_user.id, ImportMapping.name == name))
    if saved is None:
        saved = ImportMapping(user_id=current_user.id, name=name)
        db.session.add(saved)
    saved.fields = fields
    saved.options = {k: v for k, v in (batch.options or {}).items()
                     if k in ("kind", "match_key", "skip_duplicates", "strict")}


@bp.route("/import/<int:batch_id>/rejected.csv")
@permission_required("contacts.import")
def import_rejected(batch_id: int):
    """The rows the last run rejected, as they were, with the reason in the reader's
    language: fix them in a spreadsheet and import this file again."""
    from .export import neutralise

    batch = _batch(batch_id)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=batch.delimiter or ",")
    writer.writerow([_("Row"), _("Error"), *batch.columns])
    for error in db.session.scalars(select(ImportRowError).where(
            ImportRowError.import_id == batch.id).order_by(ImportRowError.row_no)):
        writer.writerow([error.row_no, neutralise(message(error.code, error.params)),
                         *(neutralise(v) for v in error.values)])
    name = batch.filename.rsplit(".", 1)[0] + "-rejected.csv"
    return Response(
        "\ufeff" + out.getvalue(), mimetype="text/csv",
        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{_quote(name)}"})


def _quote(name: str) -> str:
    from urllib.parse import quote

    return quote(name, safe="")


@bp.route("/import/<int:batch_id>/revert", methods=["POST"])
@permission_required("contacts.import")
def import_revert(batch_id: int):
    batch = _batch(batch_id)
    if batch.state != "done":
        abort(409)
    try:
        runner.revert(batch, current_user)
    except runner.RevertRefused as refused:
        db.session.rollback()
        flash(str(refused), "error")
        return redirect(url_for("contacts.import_batch", batch_id=batch.id))
    db.session.commit()
    flash(_("The import was reverted."), "success")
    return redirect(url_for("contacts.import_batch", batch_id=batch.id))
