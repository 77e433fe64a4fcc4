"""The default offer, contract and letter templates (HTML + CSS files beside this module).

They are seeded as `DocumentTemplate` rows the first time they are needed, so users edit a
copy in the database (versioned) while the files stay the reference a template can be reset
to. Each entry: code -> (kind, subject, html file, css file).
"""
from __future__ import annotations

from pathlib import Path

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
