"""The public link: the client views an offer and accepts or declines it, without an account.

Why it is built this way:

- **Signed**: the token is `itsdangerous`-signed with the app's secret and carries the offer id
  and the offer's current `public_nonce`; a changed character fails the signature.
- **Revocable**: revoking (or issuing a new link) draws a new nonce, so every earlier token no
  longer matches and answers "revoked" (no list of dead tokens to keep).
- **Expiring**: `public_expires_at` lives on the offer (not in the token), so the salesperson
  can see and change it; an expired link answers a clear page. A link made from the offer's
  pages is valid for the days the salesperson picks (1 to `MAX_DAYS`, or to the configured
  default if that is longer), `BIRGA_DOCUMENTS_PUBLIC_DAYS` (30) unless changed; the link
  mailed with the offer is valid for the default.
- **Used**: once the client accepted or declined, the link answers which, and cannot answer
  again; state changes go through `offers.change_state`, the one place the rules live.
- **CSRF** on the accept/decline form: the page issues its own Flask-WTF token in the visitor's
  session (no login needed), so another site cannot make the client's browser accept.
- **Language**: the page is rendered in the offer's document language (`force_locale`), not the
  visitor's browser language, so the client reads what the document says.
- Every issue, revocation, answer and first view goes on the offer's timeline.
"""
from __future__ import annotations

import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import force_locale, format_date
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select

from core.api import db, get_or_404, log_entry, permission_required, utcnow
from core.auth import _safe_next
from core.i18n import LANGUAGES
from core.models import User
from core.storage import Attachment
from core.timeline import TimelineEntry, day

from .models import Offer
from .views import bp

MODEL = "documents.offer"
SALT = "birga.documents.offer-public"
DEFAULT_DAYS = 30
#: The longest validity the salesperson may pick for a link (a year).
MAX_DAYS = 365


class LinkProblem(Exception):
    """Why a token opens nothing: `kind` is tampered, revoked, expired or (for posts) used."""

    def __init__(self, kind: str, offer: Offer | None = None) -> None:
        super().__init__(kind)
        self.kind = kind
        self.offer = offer


def _serializer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt=SALT)


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back; they were stored in UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def link_days() -> int:
    return int(current_app.config.get("BIRGA_DOCUMENTS_PUBLIC_DAYS", DEFAULT_DAYS))


def max_link_days() -> int:
    """The longest validity one may pick: a year, or the configured default if longer."""
    return max(MAX_DAYS, link_days())


def chosen_days(value: str | None) -> int:
    """The days typed for a new link (blank: the default); `ValueError` with a translated
    message for anything but a whole number from 1 to `max_link_days()`."""
    text = (value or "").strip()
    if not text:
        return link_days()
    longest = max_link_days()
    if not re.fullmatch(r"[0-9]{1,6}", text) or not 1 <= int(text) <= longest:
        raise ValueError(_("A link is valid for 1 to %(max)d days; enter a whole number of "
                           "days in that range.", max=longest))
    return int(text)


def make_token(offer: Offer) -> str:
    if not offer.public_nonce:
        raise ValueError("the offer has no public link")
    return _serializer().dumps({"o": offer.id, "n": offer.public_nonce})


def public_url(offer: Offer) -> str:
    return url_for("documents.public_offer", token=make_token(offer), _external=True)


def issue_link(offer: Offer, *, user: User | None = None, days: int | None = None) -> str:
    """A fresh link (older ones stop working), valid for `days`; the caller commits."""
    offer.public_nonce = secrets.token_urlsafe(24)
    offer.public_expires_at = utcnow() + timedelta(days=days or link_days())
    db.session.flush()
    log_entry(MODEL, offer.id, "system", author=user,
              subject=_l("Public link issued, valid until %(date)s",
                         date=day(offer.public_expires_at)))
    return public_url(offer)


def current_link(offer: Offer) -> str | None:
    """The offer's live link, if it has one that has not expired."""
    expires = _aware(offer.public_expires_at)
    if not offer.public_nonce or expires is None or expires <= utcnow():
        return None
    return public_url(offer)


def revoke_link(offer: Offer, *, user: User | None = None) -> None:
    """Kill every link handed out so far (a new nonce no token carries); the caller commits."""
    offer.public_nonce = secrets.token_urlsafe(24)
    offer.public_expires_at = None
    db.session.flush()
    log_entry(MODEL, offer.id, "system", author=user, subject=_l("Public link revoked"))


def resolve(token: str) -> Offer:
    """The offer a token opens, or `LinkProblem` saying why not."""
    try:
        data = _serializer().loads(token)
    except BadSignature as exc:
        raise LinkProblem("tampered") from exc
    if not isinstance(data, dict) or not isinstance(data.get("o"), int) \
            or not isinstance(data.get("n"), str):
        raise LinkProblem("tampered")
    offer = db.session.get(Offer, data["o"])
    if offer is None or not offer.public_nonce:
        raise LinkProblem("revoked")
    if not hmac.compare_digest(offer.public_nonce, data["n"]):
        raise LinkProblem("revoked", offer)
    expires = _aware(offer.public_expires_at)
    if expires is None:
        raise LinkProblem("revoked", offer)
    if expires <= utcnow():
        raise LinkProblem("expired", offer)
    return offer


def _language(offer: Offer | None) -> str:
    lang = (offer.lang if offer is not None else None) or "en"
    return lang if lang in LANGUAGES else lang.split("_")[0] if lang.split("_")[0] in \
        LANGUAGES else "en"


def _problem_page(problem: LinkProblem) -> Any:
    with force_locale(_language(problem.offer)):
        titles = {"tampered": _("This link is not valid"),
                  "revoked": _("This link was withdrawn"),
                  "expired": _("This link has expired")}
        messages = {"tampered": _("The address is incomplete or was changed. Open the link "
                                  "from the e-mail again, or ask us for a new one."),
                    "revoked": _("The sender withdrew this link. Ask them for a new one if you "
                                 "still need the offer."),
                    "expired": _("The time to view this offer online is over. Ask us for a "
                                 "new link.")}
        html = render_template("documents/public_problem.html",
                               title=titles[problem.kind], message=messages[problem.kind],
                               lang=_language(problem.offer))
    return html, 404 if problem.kind == "tampered" else 410


def _partner(offer: Offer) -> Any:
    from addons.contacts.models import Partner

    return db.session.get(Partner, offer.partner_id)


def _log_first_view(offer: Offer) -> None:
    """The first view of each link goes on the timeline (later ones would only be noise)."""
    marker = f"#{offer.public_nonce[:8]}"
    subjects = db.session.scalars(select(TimelineEntry.subject).where(
        TimelineEntry.model == MODEL, TimelineEntry.record_id == offer.id,
        TimelineEntry.kind == "system"))
    if not any(subject and subject.endswith(marker) for subject in subjects):
        log_entry(MODEL, offer.id, "system",
                  subject=_l("The client opened the public link %(marker)s", marker=marker))
        db.session.commit()


def _office_language() -> str:
    """Timeline lines are read by the firm, not the client: the installation's language."""
    return str(current_app.config.get("BABEL_DEFAULT_LOCALE") or "en")


@bp.route("/p/<token>")
def public_offer(token: str):
    """The offer as the client sees it, in the document's language; no login needed."""
    try:
        offer = resolve(token)
    except LinkProblem as problem:
        return _problem_page(problem)
    _log_first_view(offer)
    from . import offers as service

    lang = _language(offer)
    open_ = offer.state == "sent" and offer.is_current
    with force_locale(lang):
        return render_template("documents/public_offer.html", offer=offer, token=token,
                               partner=_partner(offer), lang=lang,
                               number=service.display_number(offer),
                               has_pdf=offer.sent_attachment_id is not None,
                               answerable=open_ and not _expired(offer),
                               expired=open_ and _expired(offer),
                               state_label=service.state_label(offer.state),
                               unit_label=service.unit_label)


def _expired(offer: Offer) -> bool:
    """Past its "valid until" day (the firm's calendar): the client can no longer accept
    it; the salesperson issues a revision with today's prices."""
    from .offers import local_today

    return offer.valid_until is not None and offer.valid_until < local_today()


@bp.route("/p/<token>/pdf")
def public_pdf(token: str):
    """The PDF exactly as it was sent."""
    try:
        offer = resolve(token)
    except LinkProblem as problem:
        return _problem_page(problem)
    row = db.session.get(Attachment, offer.sent_attachment_id) \
        if offer.sent_attachment_id else None
    if row is None or row.model != MODEL or row.record_id != offer.id or not row.path.is_file():
        abort(404)
    return send_file(row.path, mimetype="application/pdf", as_attachment=False,
                     download_name=row.filename, max_age=0)


@bp.route("/p/<token>/answer", methods=["POST"])
def public_answer(token: str):
    """Accept or decline (CSRF-checked by Flask-WTF like every form)."""
    try:
        offer = resolve(token)
    except LinkProblem as problem:
        return _problem_page(problem)
    decision = request.form.get("decision")
    if decision not in ("accept", "decline"):
        abort(400)
    from . import offers as service

    lang = _language(offer)
    with force_locale(lang):
        if offer.state != "sent" or not offer.is_current:
            flash(_("This offer was already answered."), "info")
            return redirect(url_for("documents.public_offer", token=token))
        if _expired(offer):
            flash(_("This offer was valid until %(date)s; ask us for a new one.",
                    date=format_date(offer.valid_until)), "error")
            return redirect(url_for("documents.public_offer", token=token))
        new_state = "accepted" if decision == "accept" else "declined"
        comment = (request.form.get("comment") or "").strip()[:2000]
        with force_locale(_office_language()):  # the text kept beside the message
            service.change_state(offer, new_state)
            log_entry(MODEL, offer.id, "system", comment,
                      subject=_l("Accepted by the client through the public link")
                      if new_state == "accepted"
                      else _l("Declined by the client through the public link"))
        db.session.commit()
        flash(_("Thank you: you accepted the offer.") if new_state == "accepted"
              else _("Thank you: you declined the offer."), "success")
    return redirect(url_for("documents.public_offer", token=token))


# -- the salesperson's side ---------------------------------------------------------------
@bp.route("/offers/<int:offer_id>/public-link", methods=["POST"])
@permission_required("documents.write")
def public_link_issue(offer_id: int):
    from flask_login import current_user

    offer = get_or_404(Offer, offer_id)
    if offer.state == "draft":
        flash(_("Send the offer before sharing a link to it."), "error")
    else:
        try:
            days = chosen_days(request.form.get("days"))
        except ValueError as exc:  # the link in use stays as it was
            flash(str(exc), "error")
        else:
            issue_link(offer, user=current_user, days=days)
            db.session.commit()
            flash(_("A new public link was created; earlier links no longer work."), "success")
    return redirect(_safe_next(request.form.get("next")
                               or url_for("documents.offer_send", offer_id=offer.id)))


@bp.route("/offers/<int:offer_id>/public-link/revoke", methods=["POST"])
@permission_required("documents.write")
def public_link_revoke(offer_id: int):
    from flask_login import current_user

    offer = get_or_404(Offer, offer_id)
    revoke_link(offer, user=current_user)
    db.session.commit()
    flash(_("The public link was withdrawn."), "success")
    return redirect(_safe_next(request.form.get("next")
                               or url_for("documents.offer_send", offer_id=offer.id)))
