"""Outgoing e-mail: templates per language, rendered in a sandbox, sent through SMTP.

    from core.api import send_mail, queue_mail

    send_mail("client@example.lv", "pipeline/offer.subject.txt", "pipeline/offer.html",
              {"name": partner.name, "total": float(offer.total)}, language=partner.lang,
              attachments=[Attachment("offer.pdf", pdf_bytes)], record=("pipeline.offer", 7))

Why it works this way:

- **Templates are per language.** A template is either a file name, looked up as
  `mail/<language>/<name>` through the app's template loader (so the instance folder and addons
  can override it), or a `{language: source}` mapping (texts an admin edited and the database
  keeps). The recipient's language picks the template (`uz_Cyrl`, then `uz`, then English), and
  `flask_babel.force_locale` makes dates, numbers and money format the recipient's way.
- **Templates render in Jinja's `ImmutableSandboxedEnvironment` with plain data only**
  (str, numbers, dates, None, and dicts/lists of those), the kernel's one sandbox
  (`core.sandbox`, shared with document templates). Admins edit these texts, so a template
  must not reach Python internals (`{{ ''.__class__.__mro__ }}` is refused) nor an ORM object
  whose attributes or lazy loads would leak other records. Undefined names are errors, not empty
  strings, so a typo never sends "Dear ,".
- **Header injection is refused**: a newline in a subject, address or file name is an error,
  never a new header.
- **A slow SMTP server never blocks a page**: `queue_mail()` renders and checks now (errors
  surface to the caller) and hands the finished message to a background job that delivers it,
  retries on SMTP failures and, keyed by Message-ID, never delivers it twice.
- **Every sent mail is announced** with `core.signals.mail_sent` (message, recipients,
  `record=(model, id)`), so the timeline can put it on the record's history without this module
  knowing the timeline.

Settings: `BIRGA_MAIL_SERVER` (localhost), `BIRGA_MAIL_PORT` (25, 587 with TLS, 465 with SSL),
`BIRGA_MAIL_USERNAME`, `BIRGA_MAIL_PASSWORD`, `BIRGA_MAIL_USE_TLS` (STARTTLS),
`BIRGA_MAIL_USE_SSL`, `BIRGA_MAIL_FROM` (required), `BIRGA_MAIL_TIMEOUT` (seconds, 30).
"""
from __future__ import annotations

import hashlib
import mimetypes
import re
import smtplib
import ssl
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from html.parser import HTMLParser
from typing import Any

import pytz
from flask import Flask, current_app
from flask_babel import force_locale, gettext, ngettext
from flask_babel import gettext as _
from huey.api import Result
from jinja2 import StrictUndefined, TemplateError, TemplateNotFound
from jinja2.sandbox import SecurityError

from .formatting import FILTERS
from .jobs import once, task
from .models import utcnow
from .sandbox import PlainDataError, StrictSandbox, TemplateRenderError, check_plain, make_sandbox
from .signals import mail_sent

__all__ = [
    "Attachment", "HeaderInjectionError", "MailConfigError", "MailContextError", "MailError",
    "MailTemplateError", "QueuedMail", "Template", "queue_mail", "render_mail", "send_mail",
]

#: A template: a file name under `templates/mail/<language>/`, or sources by language.
Template = str | Mapping[str, str]
_LANGUAGE = re.compile(r"^[a-z]{2,3}([_-][A-Za-z0-9]{2,8})*$")
_BAD_HEADER_CHARS = ("\r", "\n", "\0")
ENV_KEY = "birga.mail.env"


class MailError(Exception):
    """Base class of every e-mail error; the message is translated and safe to show."""


class MailTemplateError(MailError, TemplateRenderError):
    """A template is missing, broken, or tried something the sandbox forbids."""


class MailContextError(MailError, PlainDataError):
    """The context holds something other than plain data (e.g. an ORM object)."""


class HeaderInjectionError(MailError, ValueError):
    """A newline in a subject, address or file name: it would forge extra headers."""


class MailConfigError(MailError):
    """The app is not configured to send mail (e.g. no sender address)."""


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mimetype: str | None = None

    @property
    def maintype_subtype(self) -> tuple[str, str]:
        mimetype = self.mimetype or mimetypes.guess_type(self.filename)[0]
        mimetype = mimetype or "application/octet-stream"
        maintype, _slash, subtype = mimetype.partition("/")
        return maintype, subtype or "octet-stream"


@dataclass(frozen=True)
class QueuedMail:
    """What `queue_mail` returns: the message as it will be sent and the job's result."""

    message: EmailMessage
    result: Result | None


# -- configuration ------------------------------------------------------------------------
def _setting(app: Flask, name: str, default: Any = None) -> Any:
    for key in (f"BIRGA_{name}", name):
        value = app.config.get(key)
        if value not in (None, ""):
            return value
    return default


def _flag(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _sender(app: Flask) -> str:
    sender = _setting(app, "MAIL_FROM")
    if not sender:
        raise MailConfigError(_("No sender address: set BIRGA_MAIL_FROM."))
    return _check_address(str(sender))


# -- headers ------------------------------------------------------------------------------
def _check_header(value: str, what: str) -> str:
    if any(ch in value for ch in _BAD_HEADER_CHARS):
        raise HeaderInjectionError(_("A line break in %(what)s is refused: it could add forged "
                                     "e-mail headers.", what=what))
    return value


def _check_address(value: str) -> str:
    _check_header(value, _("an e-mail address"))
    _name, address = parseaddr(value)
    local, at, domain = address.rpartition("@")
    if not at or not local or "." not in domain:
        raise MailError(_("'%(address)s' is not a valid e-mail address.", address=value))
    return value


def _addresses(to: str | Sequence[str]) -> list[str]:
    items = [to] if isinstance(to, str) else list(to)
    if not items:
        raise MailError(_("An e-mail needs at least one recipient."))
    return [_check_address(str(item)) for item in items]


def _attachments(items: Sequence[Attachment | tuple]) -> list[Attachment]:
    result = []
    for item in items:
        att = item if isinstance(item, Attachment) else Attachment(*item)
        _check_header(att.filename, _("an attachment's file name"))
        if not isinstance(att.content, bytes | bytearray):
            raise MailError(_("The attachment %(name)s has no bytes content.",
                              name=att.filename))
        result.append(att)
    return result


# -- templates ----------------------------------------------------------------------------
def _environment(app: Flask, autoescape: bool) -> StrictSandbox:
    envs = app.extensions.setdefault(ENV_KEY, {})
    if autoescape not in envs:
        envs[autoescape] = make_sandbox(
            loader=app.jinja_loader, autoescape=autoescape, undefined=StrictUndefined,
            auto_reload=app.debug, filters=FILTERS, jinja_globals=True,
            globals={"_": gettext, "gettext": gettext, "ngettext": ngettext})
    return envs[autoescape]


def _language_chain(language: str) -> list[str]:
    if not _LANGUAGE.match(language or ""):
        raise MailError(_("'%(language)s' is not a language code.", language=language))
    parts = language.replace("-", "_").split("_")
    chain = ["_".join(parts[:n]) for n in range(len(parts), 0, -1)]
    return chain + (["en"] if "en" not in chain else [])


def _render(app: Flask, template: Template, context: dict[str, Any], language: str,
            autoescape: bool) -> str:
    env = _environment(app, autoescape)
    chain = _language_chain(language)
    try:
        if isinstance(template, Mapping):
            lang = next((code for code in chain if code in template), None)
            if lang is None:
                raise MailTemplateError(_("No e-mail template for the language %(language)s.",
                                          language=language))
            compiled = env.from_string(template[lang])
        else:
            if not isinstance(template, str) or not template:
                raise MailTemplateError(_("An e-mail template must be a name or texts by "
                                          "language."))
            compiled = env.select_template([f"mail/{code}/{template}" for code in chain])
        return compiled.render(context)
    except SecurityError as exc:
        raise MailTemplateError(_("The e-mail template tried something not allowed: "
                                  "%(detail)s", detail=str(exc))) from exc
    except TemplateNotFound as exc:
        raise MailTemplateError(_("No e-mail template %(name)s for the language "
                                  "%(language)s.", name=template, language=language)) from exc
    except TemplateError as exc:
        raise MailTemplateError(_("The e-mail template could not be rendered: %(detail)s",
                                  detail=str(exc))) from exc


class _TextFromHtml(HTMLParser):
    """The text alternative of an HTML mail: text kept, block elements become line breaks."""

    BLOCKS = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul",
              "ol", "blockquote"}
    SKIP = {"style", "script", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self.SKIP:
            self._skipping += 1
        elif tag in self.BLOCKS:
            self.parts.append("\n")
        if tag == "li":
            self.parts.append("- ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self.BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(re.sub(r"[ \t\r\n]+", " ", data))

    def text(self) -> str:
        lines = [line.strip() for line in "".join(self.parts).split("\n")]
        return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip() + "\n"


def html_to_text(html: str) -> str:
    parser = _TextFromHtml()
    parser.feed(html)
    parser.close()
    return parser.text()


@contextmanager
def _force_timezone(name: str | None) -> Iterator[None]:
    """Like `force_locale`, for the time zone dates are shown in (the recipient's)."""
    from flask import g

    if not name:
        yield
        return
    ctx = getattr(g, "_flask_babel", None)
    if ctx is None:
        from types import SimpleNamespace

        ctx = g._flask_babel = SimpleNamespace()
    saved = getattr(ctx, "babel_tzinfo", None)
    ctx.babel_tzinfo = pytz.timezone(name)
    try:
        yield
    finally:
        ctx.babel_tzinfo = saved


# -- building and sending -----------------------------------------------------------------
def render_mail(to: str | Sequence[str], subject_template: Template, body_template: Template,
                context: Mapping[str, Any], *, language: str,
                attachments: Sequence[Attachment | tuple] = (), html: bool = True,
                timezone: str | None = None, reply_to: str | None = None) -> EmailMessage:
    """The finished message, rendered in `language`; nothing is sent."""
    app = current_app._get_current_object()
    check_plain(dict(context), error=MailContextError)
    recipients = _addresses(to)
    files = _attachments(attachments)
    sender = _sender(app)
    with force_locale(language), _force_timezone(timezone):
        subject = _render(app, subject_template, dict(context), language, False).strip()
        body = _render(app, body_template, dict(context), language, html)
    _check_header(subject, _("the subject"))

    msg = EmailMessage()
    msg["Subject"] = subject
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    if reply_to:
        msg["Reply-To"] = _check_address(reply_to)
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2])
    if html:
        msg.set_content(html_to_text(body))
        msg.add_alternative(body, subtype="html")
    else:
        msg.set_content(body)
    for att in files:
        maintype, subtype = att.maintype_subtype
        msg.add_attachment(bytes(att.content), maintype=maintype, subtype=subtype,
                           filename=att.filename)
    # After the body: building multipart moves every Content-* header into the first part.
    msg["Content-Language"] = language.replace("_", "-")
    return msg


def _envelope(msg: EmailMessage) -> tuple[str, list[str]]:
    from email.utils import getaddresses

    sender = parseaddr(str(msg["From"]))[1]
    recipients = [addr for _name, addr in getaddresses(
        [str(v) for h in ("To", "Cc", "Bcc") for v in msg.get_all(h, [])]) if addr]
    return sender, recipients


def deliver(msg: EmailMessage, record: tuple[str, int] | None = None) -> list[str]:
    """Hand `msg` to the SMTP server now, announce it with `mail_sent`; returns recipients."""
    app = current_app._get_current_object()
    sender, recipients = _envelope(msg)
    host = str(_setting(app, "MAIL_SERVER", "localhost"))
    use_ssl = _flag(_setting(app, "MAIL_USE_SSL", False))
    use_tls = _flag(_setting(app, "MAIL_USE_TLS", False))
    port = int(_setting(app, "MAIL_PORT", 465 if use_ssl else 587 if use_tls else 25))
    timeout = float(_setting(app, "MAIL_TIMEOUT", 30))
    username = _setting(app, "MAIL_USERNAME")
    raw = msg.as_bytes(policy=policy.SMTP)
    if use_ssl:
        smtp: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout,
                                              context=ssl.create_default_context())
    else:
        smtp = smtplib.SMTP(host, port, timeout=timeout)
    with smtp:
        if use_tls and not use_ssl:
            smtp.starttls(context=ssl.create_default_context())
        if username:
            smtp.login(str(username), str(_setting(app, "MAIL_PASSWORD", "")))
        smtp.sendmail(sender, recipients, raw)
    mail_sent.send(app, message=msg, recipients=recipients, record=record)
    return recipients


def _check_record(record: tuple[str, int] | None) -> tuple[str, int] | None:
    if record is None:
        return None
    model, record_id = record
    if not isinstance(model, str) or not isinstance(record_id, int):
        raise MailError(_("A mail's record must be a (model name, id) pair."))
    return model, record_id


def _reply_address(record: tuple[str, int] | None) -> str | None:
    """Replies to a record's mail come back to it: `crm+<signed token>@...` when
    `BIRGA_MAIL_INBOUND_ADDRESS` is set (see `core.mail_inbound`)."""
    from .mail_inbound import reply_address

    return reply_address(record) if record else None


def send_mail(to: str | Sequence[str], subject_template: Template, body_template: Template,
              context: Mapping[str, Any], *, language: str,
              attachments: Sequence[Attachment | tuple] = (), html: bool = True,
              timezone: str | None = None, reply_to: str | None = None,
              record: tuple[str, int] | None = None) -> EmailMessage:
    """Render in the recipient's `language` and send now (blocks on SMTP; prefer
    `queue_mail` in a request). `record=(model, id)` puts the mail on that record's timeline."""
    record = _check_record(record)
    msg = render_mail(to, subject_template, body_template, context, language=language,
                      attachments=attachments, html=html, timezone=timezone,
                      reply_to=reply_to or _reply_address(record))
    deliver(msg, record)
    return msg


def queue_mail(to: str | Sequence[str], subject_template: Template, body_template: Template,
               context: Mapping[str, Any], *, language: str,
               attachments: Sequence[Attachment | tuple] = (), html: bool = True,
               timezone: str | None = None, reply_to: str | None = None,
               record: tuple[str, int] | None = None) -> QueuedMail:
    """Render and check now, deliver in a background job (retried; never sent twice)."""
    record = _check_record(record)
    msg = render_mail(to, subject_template, body_template, context, language=language,
                      attachments=attachments, html=html, timezone=timezone,
                      reply_to=reply_to or _reply_address(record))
    result = deliver_queued.delay(msg.as_bytes(policy=policy.SMTP), record)
    return QueuedMail(msg, result)


@task(name="core.mail.deliver", retries=5, retry_delay=60)
def deliver_queued(raw: bytes, record: tuple[str, int] | None = None) -> bool:
    """The job behind `queue_mail`: delivers once per Message-ID, however often it runs.
    Returns False when that message had already been delivered."""
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)  # noqa: S101 - policy.default builds EmailMessage
    message_id = str(msg["Message-ID"] or "").strip()
    with once(message_id or "sha256:" + hashlib.sha256(raw).hexdigest()) as first:
        if first:
            deliver(msg, tuple(record) if record else None)  # type: ignore[arg-type]
    return first
