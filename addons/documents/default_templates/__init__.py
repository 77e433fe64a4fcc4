"""The default offer, contract and letter templates (HTML + CSS files beside this module).

They are seeded as `DocumentTemplate` rows the first time they are needed, so users edit a
copy in the database (versioned) while the files stay the reference a template can be reset
to. Each entry: code -> (kind, subject, html file, css file).
"""
from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

HERE = Path(__file__).resolve().parent

DEFAULTS: dict[str, tuple[str, str, str, str, object]] = {
    "offer": ("offer", "offer", "offer.html", "offer.css", _l("Commercial offer")),
    "contract": ("contract", "partner", "contract.html", "generic.css", _l("Contract")),
    "letter": ("letter", "partner", "letter.html", "generic.css", _l("Letter")),
}


def source(code: str) -> tuple[str, str]:
    """(html, css) of a default template."""
    _kind, _subject, html, css, _title = DEFAULTS[code]
    return (HERE / html).read_text(encoding="utf-8"), (HERE / css).read_text(encoding="utf-8")


def ensure_default(code: str):  # noqa: ANN201 - returns a DocumentTemplate
    """The database row of a default template, created from the files (version 1) if missing."""
    from core.api import db

    from ..models import DocumentTemplate, TemplateVersion

    row = db.session.scalar(db.select(DocumentTemplate).where(DocumentTemplate.code == code))
    if row is None:
        kind, subject, _html, _css, title = DEFAULTS[code]
        html, css = source(code)
        row = DocumentTemplate(code=code, name=str(title), kind=kind, subject=subject,
                               html=html, css=css, version=1, active=True)
        db.session.add(row)
        db.session.flush()
        db.session.add(TemplateVersion(template_id=row.id, version=1, html=html, css=css))
        db.session.flush()
    return row


def template_for_offer(offer):  # noqa: ANN001,ANN201
    """The offer's own template if it has one, else the default offer template."""
    from core.api import db

    from ..models import DocumentTemplate

    if offer.template_id:
        row = db.session.get(DocumentTemplate, offer.template_id)
        if row is not None:
            return row
    return ensure_default("offer")


#: SHA-256 of (html, css) of each earlier release of a default template. A database row still
#: holding one of them was never edited, so it follows the files when a release changes them.
SHIPPED_BEFORE: dict[str, set[tuple[str, str]]] = {
    # Before the seller block printed IBAN, BIC and website (company details, 2026-11).
    "offer": {("5785153a297a16800b3d656d7ac1ca31695d6d1803bdb0964fbb70d6d312fbe6",
               "915cfacdc1e6ef0a5c27f6b08d7b78b4a9e83498da409151a8fa869faf3b6dce")},
}


def refresh_unedited(connection: Any) -> list[str]:
    """Bring the default templates nobody edited up to the shipped files, as a new version
    (the old one stays in the history, revertible); edited ones are left as the firm made
    them. Core SQL on `connection`, so a migration can call it. Returns the codes refreshed."""
    template = sa.table("documents_template", sa.column("id"), sa.column("code"),
                        sa.column("html"), sa.column("css"), sa.column("version"))
    version = sa.table("documents_template_version", sa.column("template_id"),
                       sa.column("version"), sa.column("html"), sa.column("css"),
                       sa.column("created_at"))
    refreshed = []
    for code, shipped in SHIPPED_BEFORE.items():
        row = connection.execute(sa.select(template.c.id, template.c.html, template.c.css,
                                           template.c.version)
                                 .where(template.c.code == code)).first()
        if row is None or (_sha(row.html), _sha(row.css)) not in shipped:
            continue
        html, css = source(code)
        if (html, css) == (row.html, row.css):
            continue
        connection.execute(template.update().where(template.c.id == row.id).values(
            html=html, css=css, version=row.version + 1))
        connection.execute(version.insert().values(
            template_id=row.id, version=row.version + 1, html=html, css=css,
            created_at=datetime.now(UTC)))
        refreshed.append(code)
    return refreshed


def _sha(text: str | None) -> str:
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()
