"""Attachments on any record: stored by content hash with no half-written or orphaned files,
size and sniffed-type limits, served with the right type and an RFC 5987 filename, and only to
users who may read the record (SQLite and PostgreSQL)."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import Integer, MetaData, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.api import RecordAttachment, TimelineMixin, save_attachment
from core.extensions import db
from core.storage import AttachmentRefused, sniff, storage_root
from core.testing import csrf_token

from .conftest import annotating

MODEL = "core.test_storage_doc"
PDF = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture
def make_user(make_user):
    """Users get `records.annotate` unless `annotate=False` (see `conftest.annotating`)."""
    return annotating(make_user)


class _Base(DeclarativeBase):
    metadata = MetaData()


class Doc(TimelineMixin, _Base):
    __tablename__ = "core_test_storage_doc"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    owner_id: Mapped[int | None] = mapped_column(Integer)


@pytest.fixture
def docs(app):
    Doc.__table__.create(db.engine)
    first, second = Doc(title="Contract"), Doc(title="Offer")
    db.session.add_all([first, second])
    db.session.commit()
    return first, second


@pytest.fixture
def anna_client(app, client, make_user, login):
    login(client, make_user("anna"))
    return client


def blobs(app) -> list[Path]:
    """Every file under the attachment folder, temporary ones included."""
    root = storage_root(app)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def rows():
    db.session.expire_all()
    return db.session.scalars(select(RecordAttachment).order_by(RecordAttachment.id)).all()


def post_file(client, record_id, content, filename, token=None):
    page = f"/records/{MODEL}/{record_id}/timeline"
    data = {"file": (io.BytesIO(content), filename)}
    if token is not False:
        data["csrf_token"] = token or csrf_token(client, page)
    return client.post(f"/records/{MODEL}/{record_id}/attachments", data=data,
                       content_type="multipart/form-data")


def docx_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<document/>")
    return buffer.getvalue()


def test_upload_is_stored_by_hash_and_served_with_type_and_rfc5987_name(app, docs,
                                                                        anna_client):
    doc = docs[0]
    response = post_file(anna_client, doc.id, PDF, "Līgums №5.pdf")
    assert response.status_code == 302
    [row] = rows()
    assert (row.model, row.record_id, row.filename) == (MODEL, doc.id, "Līgums №5.pdf")
    assert (row.content_type, row.size) == ("application/pdf", len(PDF))
    assert blobs(app) == [storage_root(app) / row.sha256[:2] / row.sha256]

    download = anna_client.get(f"/attachments/{row.id}")
    assert download.status_code == 200 and download.data == PDF
    assert download.mimetype == "application/pdf"
    disposition = download.headers["Content-Disposition"]
    assert disposition.startswith("attachment;")
    assert "filename*=UTF-8''L%C4%ABgums%20%E2%84%965.pdf" in disposition
    page = anna_client.get(f"/records/{MODEL}/{doc.id}/timeline").get_data(as_text=True)
    assert "Līgums №5.pdf" in page


def test_the_same_content_is_one_file_and_kept_until_its_last_record_goes(app, docs,
                                                                         anna_client):
    first, second = docs
    post_file(anna_client, first.id, PDF, "a.pdf")
    post_file(anna_client, second.id, PDF, "b.pdf")
    assert len(rows()) == 2 and len(blobs(app)) == 1

    db.session.delete(db.session.get(Doc, first.id))
    db.session.commit()
    assert [r.filename for r in rows()] == ["b.pdf"] and len(blobs(app)) == 1

    db.session.delete(db.session.get(Doc, second.id))
    db.session.commit()
    assert rows() == [] and blobs(app) == []


def test_deleting_an_attachment_removes_its_file(app, docs, anna_client):
    post_file(anna_client, docs[0].id, PDF, "a.pdf")
    [row] = rows()
    token = csrf_token(anna_client, f"/records/{MODEL}/{docs[0].id}/timeline")
    response = anna_client.post(f"/attachments/{row.id}/delete", data={"csrf_token": token})
    assert response.status_code == 302
    assert rows() == [] and blobs(app) == []


def test_files_over_the_size_limit_leave_nothing_behind(make_app, make_user, login):
    app = make_app(BIRGA_ATTACHMENT_MAX_BYTES=1000)
    with app.app_context():
        Doc.__table__.create(db.engine)
        doc = Doc(title="Big")
        db.session.add(doc)
        db.session.commit()
        client = app.test_client()
        login(client, make_user("anna"))
        response = post_file(client, doc.id, b"a" * 1500 + b"\n", "big.txt")
        assert response.status_code == 302
        follow = client.get(response.location).get_data(as_text=True)
        assert "big.txt was not attached: The file is larger than 1000 bytes." in follow
        assert rows() == [] and blobs(app) == []
        assert post_file(client, doc.id, b"a" * 900, "small.txt").status_code == 302
        assert [r.content_type for r in rows()] == ["text/plain"]


@pytest.mark.parametrize(("content", "filename"), [
    (b"<html><script>alert(1)</script></html>", "page.html"),
    (b"MZ\x90\x00\x03\x00\x00\x00", "setup.exe"),
    (PNG, "invoice.pdf"),  # content and name disagree
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "logo.svg"),
])
def test_refused_types_are_not_stored(app, docs, anna_client, content, filename):
    response = post_file(anna_client, docs[0].id, content, filename)
    assert response.status_code == 302
    assert rows() == [] and blobs(app) == []


def test_type_comes_from_the_bytes_refined_by_the_name_within_a_family():
    assert sniff(PDF, "whatever") == "application/pdf"
    assert sniff(PNG, "photo") == "image/png"
    assert sniff(docx_bytes(), "offer.docx") == (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document")
    assert sniff(docx_bytes(), "offer.pdf") == "application/zip"
    assert sniff("Vārds;Summa\n".encode(), "list.csv") == "text/csv"
    assert sniff(b"\x00\x01\x02binary", "notes.txt") == "application/octet-stream"


def test_an_office_document_is_accepted_as_its_type(app, docs, anna_client):
    post_file(anna_client, docs[0].id, docx_bytes(), "offer.docx")
    [row] = rows()
    assert row.content_type.endswith("wordprocessingml.document")


def test_upload_needs_the_csrf_token(app, docs, anna_client):
    assert post_file(anna_client, docs[0].id, PDF, "a.pdf", token=False).status_code == 400
    assert rows() == [] and blobs(app) == []


def test_an_upload_that_fails_midway_or_is_not_committed_leaves_no_file(app, docs):
    class Broken(io.RawIOBase):
        def __init__(self):
            self.calls = 0

        def readable(self):
            return True

        def read(self, size=-1):
            self.calls += 1
            if self.calls > 2:
                raise OSError("connection reset")
            return b"%PDF-" + b"x" * 70000

    with pytest.raises(OSError):
        save_attachment(MODEL, docs[0].id, Broken(), "half.pdf")
    assert blobs(app) == []

    save_attachment(MODEL, docs[0].id, io.BytesIO(PDF), "draft.pdf")
    db.session.flush()
    assert len(blobs(app)) == 1
    db.session.rollback()
    assert rows() == [] and blobs(app) == []

    with pytest.raises(AttachmentRefused):
        save_attachment(MODEL, docs[0].id, io.BytesIO(b""), "empty.pdf")
    assert blobs(app) == []


def test_attachments_of_records_outside_the_users_rules_are_404(app, docs, client, make_user,
                                                                login):
    from core.security import Role, register_record_rule, seed_default_roles, set_user_roles

    owner, sam = make_user("owner"), make_user("sam")
    register_record_rule(Doc, "owner_id", app=app)
    seed_default_roles()
    set_user_roles(sam, [db.session.scalar(select(Role.id).where(Role.code == "salesperson"))])
    theirs, mine = docs
    theirs.owner_id, mine.owner_id = owner.id, sam.id
    save_attachment(MODEL, theirs.id, io.BytesIO(PDF), "secret.pdf", user=owner)
    db.session.commit()
    [row] = rows()

    login(client, sam)
    assert client.get(f"/attachments/{row.id}").status_code == 404
    token = csrf_token(client, f"/records/{MODEL}/{mine.id}/timeline")
    assert post_file(client, theirs.id, PDF, "x.pdf", token=token).status_code == 404
    response = client.post(f"/attachments/{row.id}/delete", data={"csrf_token": token})
    assert response.status_code == 404
    assert post_file(client, mine.id, PNG, "mine.png", token=token).status_code == 302
    by_name = {r.filename: r for r in rows()}
    assert sorted(by_name) == ["mine.png", "secret.pdf"]
    download = client.get(f"/attachments/{by_name['mine.png'].id}")
    assert download.status_code == 200 and download.mimetype == "image/png"
