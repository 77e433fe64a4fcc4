"""Sending an offer by e-mail: the letter in the document's language, the PDF attached.

Why it works this way:

- **One transaction, SMTP inside it.** The state moves to sent (through `offers.change_state`,
  which also draws the gap-free number), the PDF is rendered with that number, stored as an
  attachment, the public link issued and the mail logged on the timeline, all in the session;
  the mail is then handed to the SMTP server and only after the server accepted it is the
  transaction committed. A refused mail rolls everything back: no number burnt, no offer marked
  sent that the client never got. (`queue_mail` would let the page return sooner but would mark
  the offer sent before anyone knows the mail left.)
- **Byte for byte.** The bytes attached to the mail are the bytes stored
  (`Offer.sent_attachment_id`), so "what did the client receive?" is answered by the file.
- **The timeline entry is written here**, in the same transaction, not by `core.mail`'s
  `mail_sent` listener: that one writes on its own connection, which SQLite would block
  behind this open transaction.
- **Templates per language** live in `templates/documents/mail/<lang>/offer_mail.subject.txt`
  and `offer_mail.html` (instance folders can override them); they render in `core.mail`'s
  sandbox with plain data only.
- **The salesperson's own message** (optional, typed on the send page) is handed to the
  letter as `personal_message`, a list of paragraphs each a list of lines, so the sandbox
  escapes every line and the template only adds `<p>` and `<br>`; the text part is made
  from the HTML, so it reads the same. An overridden letter written before this existed
  (no `personal_message` in it) gets the paragraphs after its first paragraph, the greeting:
  a message typed by the salesperson is never dropped silently. The timeline keeps the
  letter as sent, the message included.
"""
from __future__ import annotations

import io
from email.message import EmailMessage
from typing import Any

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from jinja2 import TemplateNotFound
from markupsafe import Markup

from core.api import (
    Attachment,
    MailError,
    db,
    get_or_404,
    log_entry,
    permission_required,
    save_attachment,
    send_mail,
)
from core.i18n import LANGUAGES
from core.mail_inbound import reply_address
from core.models import User
from core.storage import Attachment as StoredFile
from core.timeline import paragraphs, sanitize

from .models import Offer
from .views import bp

MODEL = "documents.offer"
SUBJECT = "documents/mail/%s/offer_mail.subject.txt"
BODY = "documents/mail/%s/offer_mail.html"
#: The longest personal message the send form takes (characters).
MESSAGE_MAX = 5000
#: The paragraphs of the personal message, as the shipped letters place them; put after the
#: first paragraph of an overridden letter that does not place them itself.
MESSAGE_BLOCK = ("{% for paragraph in personal_message %}<p>{% for line in paragraph %}"
                 "{{ line }}{% if not loop.last %}<br>{% endif %}{% endfor %}</p>\n{% endfor %}")


class SendError(Exception):
    """The offer could not be sent; `str()` is a translated message for the person."""


# -- the PDF ------------------------------------------------------------------------------
def render_pdf(offer: Offer) -> bytes:
    """The offer's PDF (`pdf.render_offer_pdf`). A template that cannot be rendered (broken,
    refused by the sandbox, or reaching for an outside resource) and a PDF whose fonts would
    show empty boxes are a `SendError` with the reason: the sender fixes the template, the
    client never gets a broken document, and nobody sees an error page."""
    from core.sandbox import SandboxError

    from . import pdf

    try:
        result = pdf.render_offer_pdf(offer)
    except (pdf.PdfError, SandboxError) as exc:
        raise SendError(_("The offer's PDF cannot be rendered: %(reason)s",
                          reason=str(exc))) from exc
    if result.missing_glyphs:
        raise SendError(pdf.glyph_warning(result.missing_glyphs))
    return result.pdf


def pdf_filename(offer: Offer) -> str:
    from .offers import display_number

    stem = display_number(offer).replace("/", "-").replace(" ", "-")
    return f"{stem}.pdf"


# -- the letter ---------------------------------------------------------------------------
def _sources(pattern: str) -> dict[str, str]:
    """{language: template source} through the app's loader (instance overrides win)."""
    app = current_app
    found = {}
    for lang in LANGUAGES:
        try:
            source, _name, _up = app.jinja_loader.get_source(app.jinja_env, pattern % lang)
        except TemplateNotFound:
            continue
        found[lang] = source
    return found


def _body_sources() -> dict[str, str]:
    """The letter's sources, each placing the personal message (see the module notes)."""
    found = _sources(BODY)
    for lang, source in found.items():
        if "personal_message" not in source:
            end = source.find("</p>")
            at = end + len("</p>") if end >= 0 else 0
            found[lang] = source[:at] + "\n" + MESSAGE_BLOCK + source[at:]
    return found


def message_paragraphs(text: str | None) -> list[list[str]]:
    """A typed message as paragraphs (split at blank lines) of lines, blank ones dropped."""
    lines = (text or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    paragraphs: list[list[str]] = [[]]
    for line in (line.rstrip() for line in lines):
        if line.strip():
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    return [p for p in paragraphs if p]


def mail_context(offer: Offer, partner: Any, sender: User | None,
                 link: str | None, message: str | None = None) -> dict[str, Any]:
    """Plain data for the sandboxed templates (never ORM objects)."""
    from .offers import display_number

    with force_locale(mail_language(offer)):
        number = display_number(offer)
    return {
        "client_name": partner.name,
        "number": number,
        "total": offer.amount_total,
        "currency": offer.currency,
        "valid_until": offer.valid_until,
        "sender_name": sender.display_name if sender is not None else "",
        "public_url": link or "",
        "personal_message": message_paragraphs(message),
    }


def mail_language(offer: Offer) -> str:
    lang = offer.lang or "en"
    return lang if lang in LANGUAGES else lang.split("_")[0] \
        if lang.split("_")[0] in LANGUAGES else "en"


def _log_mail(offer: Offer, message: EmailMessage, recipient: str, user: User | None) -> None:
    part = message.get_body(preferencelist=("html", "plain"))
    content = part.get_content() if part is not None else ""
    body = sanitize(content) if part is not None and part.get_content_subtype() == "html" \
        else sanitize(paragraphs(content))
    # The subject is what the client received (user data); the "To:" line is a message.
    log_entry(MODEL, offer.id, "email", [_l("To: %(recipients)s", recipients=recipient), body],
              subject=str(message["Subject"])[:300], author=user)


def _sent_file(offer: Offer) -> StoredFile | None:
    """The PDF the client already received, if this offer was sent before."""
    if not offer.sent_attachment_id:
        return None
    row = db.session.get(StoredFile, offer.sent_attachment_id)
    ok = row is not None and row.model == MODEL and row.record_id == offer.id \
        and row.path.is_file()
    return row if ok else None


def freeze_pdf(offer: Offer, *, user: User | None = None) -> StoredFile:
    """The PDF the client has, stored on the offer once, when it first becomes sent (by
    e-mail here, or marked sent by hand after handing it over): every later copy, mail and
    public link gives these very bytes, whatever the template or the firm's details become.
    `SendError` when it cannot be rendered (the caller rolls back)."""
    stored = _sent_file(offer)
    if stored is None:
        pdf = render_pdf(offer)
        stored = save_attachment(MODEL, offer.id, io.BytesIO(pdf), pdf_filename(offer),
                                 user=user)
        db.session.flush()
        offer.sent_attachment_id = stored.id
    return stored


def send_offer(offer: Offer, *, to: str | None = None, user: User | None = None,
               message: str | None = None) -> EmailMessage:
    """Send the offer to `to` (the client's e-mail by default), with the salesperson's own
    `message` in the letter when given, and commit; `SendError` or `MailError` leave nothing
    changed."""
    from addons.contacts.models import Partner

    from . import offers as service
    from .public import issue_link

    partner = db.session.get(Partner, offer.partner_id)
    recipient = (to or (partner.email if partner else "") or "").strip()
    if not recipient:
        raise SendError(_("The client has no e-mail address; enter one."))
    if len((message or "").replace("\r\n", "\n").strip()) > MESSAGE_MAX:
        raise SendError(_("The message is too long: at most %(max)d characters.",
                          max=MESSAGE_MAX))
    if offer.state not in ("draft", "sent") or not offer.is_current:
        raise SendError(_("Only a draft or a sent offer can be sent."))
    try:
        if offer.state == "draft":
            try:
                service.change_state(offer, "sent", user=user)
            except service.OfferError as exc:
                raise SendError(str(exc)) from exc
        stored = freeze_pdf(offer, user=user)
        pdf = stored.path.read_bytes()
        link = issue_link(offer, user=user)
        language = mail_language(offer)
        mail = send_mail(recipient, _sources(SUBJECT), _body_sources(),
                         mail_context(offer, partner, user, link, message), language=language,
                         attachments=[Attachment(stored.filename, pdf, "application/pdf")],
                         reply_to=reply_address((MODEL, offer.id)))
        _log_mail(offer, mail, recipient, user)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    return mail


# -- web ----------------------------------------------------------------------------------
@bp.record
def _register_hooks(state: Any) -> None:
    """Contributions to the offer page's hooks, added when the blueprint is registered (so
    they need no line in the addon's `init_app`)."""
    registry = state.app.extensions["birga"].registry
    registry.add_hook("documents.offer.actions", render_actions, sequence=50,
                      addon="documents")
    registry.add_hook("documents.offer.sidebar", render_public_panel, sequence=50,
                      addon="documents")


def render_actions(offer: Offer | None = None, **_ctx: Any) -> Markup:
    """`documents.offer.actions`: "Send by e-mail" and "PDF as sent"."""
    if offer is None or not current_user.is_authenticated \
            or not current_user.has_permission("documents.read"):
        return Markup("")
    return Markup(render_template(  # noqa: S704 - an autoescaped template we render
        "documents/offer_mail_actions.html", offer=offer,
        can_write=current_user.has_permission("documents.write")))


def render_public_panel(offer: Offer | None = None, **_ctx: Any) -> Markup:
    """`documents.offer.sidebar`: the public link, with new-link and withdraw buttons."""
    if offer is None or offer.state == "draft" or not current_user.is_authenticated \
            or not current_user.has_permission("documents.write"):
        return Markup("")
    from .public import current_link, link_days, max_link_days

    return Markup(render_template(  # noqa: S704 - an autoescaped template we render
        "documents/public_link_panel.html", offer=offer, link=current_link(offer),
        next_url=request.full_path.rstrip("?"), link_days=link_days(),
        max_link_days=max_link_days()))


@bp.route("/offers/<int:offer_id>/send", methods=["GET", "POST"])
@permission_required("documents.write")
def offer_send(offer_id: int):
    from addons.contacts.models import Partner

    from .public import current_link, link_days, max_link_days

    offer = get_or_404(Offer, offer_id)
    partner = db.session.get(Partner, offer.partner_id)
    recipient = (request.form.get("to") or "").strip() if request.method == "POST" \
        else (partner.email or "")
    message = (request.form.get("message") or "") if request.method == "POST" else ""
    if request.method == "POST":
        try:
            send_offer(offer, to=recipient, user=current_user, message=message)
        except (SendError, MailError) as exc:
            flash(_("The offer was not sent: %(reason)s", reason=str(exc)), "error")
        except OSError:
            current_app.logger.exception("SMTP failure sending offer %s", offer_id)
            flash(_("The offer was not sent: the mail server could not be reached."), "error")
        else:
            flash(_("The offer was sent to %(address)s.", address=recipient), "success")
            return redirect(url_for("documents.offer_send", offer_id=offer.id))
    return render_template("documents/offer_mail_send.html", offer=offer, partner=partner,
                           recipient=recipient, message=message, message_max=MESSAGE_MAX,
                           link=current_link(offer), link_days=link_days(),
                           max_link_days=max_link_days(),
                           language=LANGUAGES.get(mail_language(offer), offer.lang),
                           offer_url=_offer_url(offer))


def _offer_url(offer: Offer) -> str | None:
    """The offers engineer's page, when it exists."""
    for endpoint in ("documents.offer", "documents.offer_show", "documents.offer_view"):
        if endpoint in current_app.view_functions:
            return url_for(endpoint, offer_id=offer.id)
    return None


@bp.route("/offers/<int:offer_id>/sent.pdf")
@permission_required("documents.read")
def offer_sent_pdf(offer_id: int):
    """The PDF exactly as it was mailed (inline, after the record check)."""
    from flask import abort, send_file

    row = _sent_file(get_or_404(Offer, offer_id))
    if row is None:
        abort(404)
    return send_file(row.path, mimetype="application/pdf", as_attachment=False,
                     download_name=row.filename, max_age=0)

