"""Attachments on any record, stored outside the web root by content hash.

Files live under `instance/attachments/<2 hex>/<sha256>`; the database row (`core_attachment`)
carries the name people gave the file, the type sniffed from its first bytes, and the generic
record link. Three guarantees:

- **No half-written file is ever visible.** An upload streams into `attachments/tmp/`, is
  hashed and size-checked on the way, fsynced, then `os.replace`d into place (atomic on one
  filesystem); only a committed row makes a file reachable.
- **No orphans.** Deleting a record deletes its attachment rows in the same flush; after the
  commit every content hash that lost a row is checked and its file removed once nothing refers
  to it (identical uploads share one file). An upload whose transaction never commits is
  removed the same way.
- **Served only to readers.** The download view checks `core.records.can_read` for the record
  first and answers 404 otherwise; the type is the sniffed one and the file always comes as a
  download (`Content-Disposition: attachment` with an RFC 5987 `filename*` for non-ASCII names).

Known limit: if a record is deleted while someone uploads the very same bytes to another record,
the unlink after the first commit can race the second upload's rename; rows never point at a
missing file otherwise.
"""
from __future__ import annotations

import codecs
import hashlib
import logging
import mimetypes
import os
import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user, login_required
from markupsafe import Markup
from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    delete,
    event,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from .extensions import db
from .models import User, utcnow
from .records import can_annotate, can_read, record_name, record_ref
from .registry import Registry
from .signals import attachment_removing

__all__ = ["Attachment", "AttachmentRefused", "attachments_for", "save_attachment", "sniff"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_TYPES = (
    "application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp", "text/plain",
    "text/csv", "application/rtf", "application/zip", "application/msword",
    "application/vnd.ms-excel", "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
)
#: Types that one look at the first bytes settles.
SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"{\\rtf", "application/rtf"),
)
ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
#: Office formats `mimetypes` may not know on every system.
EXTENSION_TYPES = {
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".odp": "application/vnd.oasis.opendocument.presentation",
    ".doc": "application/msword", ".xls": "application/vnd.ms-excel",
    ".ppt": "application/vnd.ms-powerpoint", ".csv": "text/csv", ".txt": "text/plain",
    ".zip": "application/zip", ".webp": "image/webp", ".rtf": "application/rtf",
}
ZIP_FAMILY = {"application/zip"} | {t for e, t in EXTENSION_TYPES.items()
                                    if e in (".docx", ".xlsx", ".pptx", ".odt", ".ods", ".odp")}
OLE_FAMILY = {"application/msword", "application/vnd.ms-excel", "application/vnd.ms-powerpoint"}
CHUNK = 64 * 1024
_FRESH = "birga_attachments_fresh"  # hashes written in this transaction
_GONE = "birga_attachments_gone"  # hashes that lost a row in this transaction
_ENGINE = "birga_attachments_engine"


class Attachment(db.Model):
    __tablename__ = "core_attachment"
    __table_args__ = (Index("ix_core_attachment_record", "model", "record_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(80))
    record_id: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    uploaded_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_user.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    uploaded_by: Mapped[User | None] = db.relationship()

    @property
    def path(self) -> Path:
        return blob_path(storage_root(), self.sha256)


class AttachmentRefused(ValueError):
    """An upload broke a limit; `str()` is a translated message for the person."""


# -- files -------------------------------------------------------------------------------
def storage_root(app: Flask | None = None) -> Path:
    app = app or current_app
    configured = app.config.get("BIRGA_ATTACHMENT_DIR")
    return Path(configured) if configured else Path(app.instance_path) / "attachments"


def blob_path(root: Path, sha256: str) -> Path:
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ValueError("not a sha256 hex digest")
    return root / sha256[:2] / sha256


def clean_filename(name: str | None) -> str:
    """The name as given, without folders or control characters (kept non-ASCII)."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip().strip(".") or "file"
    if len(base) > 255:
        stem, dot, ext = base.rpartition(".")
        base = (stem[: 255 - len(ext) - 1] + dot + ext) if dot and len(ext) < 20 else base[:255]
    return base


def _type_by_name(filename: str) -> str | None:
    ext = Path(filename).suffix.lower()
    return EXTENSION_TYPES.get(ext) or mimetypes.guess_type(filename, strict=False)[0]


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def sniff(head: bytes, filename: str) -> str:
    """The content type from the first bytes, refined by the name only within a family.

    A `.pdf` that starts like a PNG is refused by the caller; a `.docx` is accepted only when
    the bytes are a ZIP container, a `.txt` only when they are text.
    """
    by_name = _type_by_name(filename)
    for magic, kind in SIGNATURES:
        if head.startswith(magic):
            return kind
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(ZIP_MAGIC):
        return by_name if by_name in ZIP_FAMILY else "application/zip"
    if head.startswith(OLE_MAGIC):
        return by_name if by_name in OLE_FAMILY else "application/x-ole-storage"
    if head and _looks_like_text(head):
        if by_name is None or by_name == "text/plain":
            return "text/plain"
        # .csv stays csv; .html, .svg or .js stay what they are and meet the allow-list.
        return by_name if by_name.startswith("text/") or by_name.endswith(("+xml", "/xml",
                                                                            "javascript")) \
            else "text/plain"
    return "application/octet-stream"


def save_attachment(model: str, record_id: int, stream: IO[bytes], filename: str | None, *,
                    user: User | None = None) -> Attachment:
    """Store an upload and add its row to the session (the caller commits).

    Raises `AttachmentRefused` for a file over `BIRGA_ATTACHMENT_MAX_BYTES`, an empty one, or
    a type outside `BIRGA_ATTACHMENT_TYPES`; nothing is left on disk then.
    """
    app = current_app
    limit = int(app.config.get("BIRGA_ATTACHMENT_MAX_BYTES", DEFAULT_MAX_BYTES))
    allowed = set(app.config.get("BIRGA_ATTACHMENT_TYPES") or DEFAULT_TYPES)
    name = clean_filename(filename)
    root = storage_root(app)
    tmp_dir = root / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    digest, size, head = hashlib.sha256(), 0, b""
    fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := stream.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise AttachmentRefused(_("The file is larger than %(size)s.",
                                              size=human_size(limit)))
                if len(head) < 8192:
                    head += chunk[: 8192 - len(head)]
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if size == 0:
            raise AttachmentRefused(_("The file is empty."))
        kind = sniff(head, name)
        by_name = _type_by_name(name)
        if kind not in allowed:
            raise AttachmentRefused(_("Files of this type cannot be attached."))
        if (kind not in ZIP_FAMILY | OLE_FAMILY and by_name is not None and by_name != kind
                and not (kind == "text/plain" and by_name.startswith("text/"))):
            raise AttachmentRefused(_("The file's content does not match its name."))
        sha = digest.hexdigest()
        target = blob_path(root, sha)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp_name, target)  # atomic: the blob is complete or absent
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    row = Attachment(model=model, record_id=record_id, filename=name, content_type=kind,
                     size=size, sha256=sha, uploaded_by_id=user.id if user is not None else None)
    session = db.session()
    session.info.setdefault(_FRESH, {})[sha] = str(root)
    session.add(row)
    return row


def human_size(size: int) -> str:
    """`1,000 bytes`, `12.5 KB`, `20 MB` in the user's language and number format."""
    from .formatting import format_number

    if size < 1024:
        return ngettext("%(num)d byte", "%(num)d bytes", size)
    unit = 1024 if size < 1024 * 1024 else 1024 * 1024
    amount = format_number(size / unit, 0 if size % unit == 0 else 1)
    return _("%(size)s KB", size=amount) if unit == 1024 else _("%(size)s MB", size=amount)


def attachments_for(model: str, record_id: int) -> list[Attachment]:
    return list(db.session.scalars(
        select(Attachment).where(Attachment.model == model, Attachment.record_id == record_id)
        .order_by(Attachment.created_at.desc(), Attachment.id.desc())))


# -- keeping files and rows in step ------------------------------------------------------
@event.listens_for(Session, "after_flush")
def _drop_attachments_of_deleted(session: Session, flush_context: Any) -> None:
    """A deleted record takes its attachment rows with it; their blobs are checked later."""
    gone: dict[str, str] = {}
    root: str | None = None
    for obj in session.deleted:
        if isinstance(obj, Attachment):
            root = root or str(storage_root())
            gone[obj.sha256] = root
        elif record_name(obj) is not None:
            name, record_id = record_ref(obj)
            conn = session.connection()
            where = (Attachment.model == name, Attachment.record_id == record_id)
            hashes = conn.execute(select(Attachment.sha256).where(*where)).scalars().all()
            if hashes:
                conn.execute(delete(Attachment.__table__).where(*where))
                root = root or str(storage_root())
                gone.update(dict.fromkeys(hashes, root))
    for obj in session.new:
        if isinstance(obj, Attachment):
            session.info.setdefault(_FRESH, {}).setdefault(obj.sha256, str(storage_root()))
    if gone:
        session.info.setdefault(_GONE, {}).update(gone)
    if gone or session.info.get(_FRESH):
        session.info[_ENGINE] = session.connection().engine


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    gone = session.info.pop(_GONE, {})
    session.info.pop(_FRESH, None)  # committed: those blobs are referenced now
    _remove_unreferenced(session.info.pop(_ENGINE, None), gone)


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: Any) -> None:
    """Not committed (rolled back or closed): fresh blobs nobody refers to go; deletions that
    did not happen are forgotten."""
    if transaction.parent is not None or transaction.nested:
        return
    fresh = session.info.pop(_FRESH, {})
    session.info.pop(_GONE, None)
    engine = session.info.pop(_ENGINE, None)
    if fresh:
        _remove_unreferenced(engine or _engine_of(session), fresh)


def _engine_of(session: Session) -> Engine | None:
    try:
        return session.get_bind(mapper=Attachment.__mapper__)  # type: ignore[return-value]
    except Exception:  # noqa: BLE001 - no bind: nothing we can check against
        return None


def _remove_unreferenced(engine: Engine | None, candidates: dict[str, str]) -> None:
    if not candidates or engine is None:
        return
    try:
        with engine.connect() as conn:
            used = set(conn.execute(select(Attachment.sha256).where(
                Attachment.sha256.in_(list(candidates)))).scalars())
    except Exception:  # noqa: BLE001 - keep the files rather than guess
        log.exception("could not check attachment references; files kept")
        return
    for sha, root in candidates.items():
        if sha not in used:
            blob_path(Path(root), sha).unlink(missing_ok=True)


# -- web ---------------------------------------------------------------------------------
bp = Blueprint("attachments", __name__)


@bp.route("/records/<model>/<int:record_id>/attachments", methods=["POST"])
@login_required
def upload(model: str, record_id: int):
    if not can_read(model, record_id):
        abort(404)
    if not can_annotate(model, record_id):
        abort(403)
    from .auth import _safe_next

    target = _safe_next(request.form.get("next") or url_for(
        "timeline.show", model=model, record_id=record_id))
    files = [f for f in request.files.getlist("file") if f and f.filename]
    if not files:
        flash(_("Choose a file to attach."), "error")
        return redirect(target)
    try:
        for upload_file in files:
            save_attachment(model, record_id, upload_file.stream, upload_file.filename,
                            user=current_user)
        db.session.commit()
    except AttachmentRefused as exc:
        db.session.rollback()
        flash(_("%(name)s was not attached: %(reason)s", name=clean_filename(
            upload_file.filename), reason=str(exc)), "error")
        return redirect(target)
    flash(_("Attached."), "success")
    return redirect(target)


@bp.route("/attachments/<int:attachment_id>")
@login_required
def download(attachment_id: int):
    row = db.session.get(Attachment, attachment_id)
    if row is None or not can_read(row.model, row.record_id):
        abort(404)
    path = row.path
    if not path.is_file():
        log.error("attachment %s has no file at %s", row.id, path)
        abort(404)
    response = send_file(path, mimetype=row.content_type, as_attachment=True,
                         download_name=row.filename, etag=row.sha256, max_age=0,
                         conditional=True)
    response.headers["Cache-Control"] = "private, max-age=0"
    return response


@bp.route("/attachments/<int:attachment_id>/delete", methods=["POST"])
@login_required
def remove(attachment_id: int):
    row = db.session.get(Attachment, attachment_id)
    if row is None or not can_read(row.model, row.record_id):
        abort(404)
    if not (row.uploaded_by_id == current_user.id or current_user.has_permission("core.admin")):
        abort(403)
    from .auth import _safe_next

    target = _safe_next(request.form.get("next") or url_for(
        "timeline.show", model=row.model, record_id=row.record_id))
    try:
        attachment_removing.send(current_app._get_current_object(), attachment=row)
    except AttachmentRefused as refused:
        flash(str(refused), "error")
        return redirect(target)
    db.session.delete(row)
    db.session.commit()
    flash(_("Attachment deleted."), "success")
    return redirect(target)


def render_attachments(model: str | None = None, record_id: int | None = None, *,
                       record: Any = None, **_ctx: Any) -> Markup:
    """The `record.attachments` hook: the list and an upload form, for readers only."""
    if record is not None:
        model, record_id = record_ref(record)
    if model is None or record_id is None or not can_read(model, int(record_id)):
        return Markup("")
    return Markup(render_template(  # noqa: S704 - an autoescaped template we render
        "core/attachments/list.html", model=model, record_id=int(record_id),
        attachments=attachments_for(model, int(record_id)), human_size=human_size,
        next_url=request.full_path.rstrip("?"), can_annotate=can_annotate(model, int(record_id))))


def init_app(app: Flask, registry: Registry) -> None:
    app.register_blueprint(bp)
    registry.add_hook("record.attachments", render_attachments)
