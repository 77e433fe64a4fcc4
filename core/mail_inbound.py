"""Inbound e-mail: `birga mail ingest` takes one message from the MTA and routes it.

The MTA pipes every message for the firm's CRM addresses into the command (Postfix:
`birga unix - n n - - pipe user=birga argv=/srv/birga/.venv/bin/birga mail ingest
-r ${original_recipient}`). One message is routed, in this order:

1. **A signed `+token` in a recipient address** (`crm+pipeline.deal-7-<signature>@firm.lv`):
   the record it names. Mail sent with `record=` carries such a `Reply-To` when
   `BIRGA_MAIL_INBOUND_ADDRESS` is set, so a reply finds its record even when the client drops
   the threading headers. The signature (HMAC of the secret key) stops anyone from filing mail
   on a record by guessing its id.
2. **`In-Reply-To` / `References`** against the Message-IDs recorded when Birga sent mail for a
   record (`core_mail_sent`, filled from the `mail_sent` signal), newest reference first.
3. **A handler an addon registered for the recipient address** from its `init_app`:
   `addon.mail_handler("leads@*", create_lead)`; exact addresses win over patterns. The handler
   gets an `InboundMail` (plain data: addresses, subject, decoded text and HTML, attachments as
   bytes). It returns False to decline, or the record it filed the mail on (an instance or a
   `(model, id)` pair) to put the mail on that record's timeline too.

A reply lands on the record's timeline as a received e-mail (sanitised body, sender, subject)
and its attachments go through the attachments service. Anything else is refused.

Why the exit codes: MTAs read sysexits. A message that is not mail is `EX_DATAERR` (65) and one
nobody takes is `EX_NOUSER` (67): both bounce. A database that is down, or any other failure
we cannot judge, is `EX_TEMPFAIL` (75): the MTA keeps the message and retries, so no lead is
lost while the database restarts.

Settings: `BIRGA_MAIL_INBOUND_ADDRESS` (the address the MTA pipes here, e.g. `crm@firm.lv`;
when set, mail sent for a record gets a signed `Reply-To`), and in the command's environment
`BIRGA_MAIL_INBOUND_MAX_BYTES` (50 MB; larger input is refused before anything is parsed).

Idempotency: every handled message leaves a row in `core_mail_received`, unique on its
Message-ID (or the hash of the bytes when it has none), written in the same transaction as
the timeline entry or the handler's records; a second delivery finds it and does nothing.
"""
from __future__ import annotations

import base64
import codecs
import fnmatch
import hashlib
import hmac
import io
import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr
from typing import Any
from weakref import WeakKeyDictionary

import click
from blinker import Namespace
from flask import Flask, current_app
from flask.cli import ScriptInfo
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from sqlalchemy import DateTime, Integer, String, insert, select
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Mapped, mapped_column

from .addons import AddonError
from .extensions import db
from .models import utcnow
from .registry import Registry
from .signals import mail_sent

__all__ = [
    "EX_DATAERR", "EX_NOUSER", "EX_TEMPFAIL", "InboundAttachment", "InboundMail",
    "IngestResult", "MalformedMail", "ReceivedMail", "SentMail", "UnroutableMail",
    "add_mail_handler", "ingest", "mail_cli", "mail_received", "parse_mail",
    "register_mail_handler", "reply_address", "reply_record",
]

log = logging.getLogger("birga.mail.inbound")

EX_DATAERR = 65  # not a mail message: bounce
EX_NOUSER = 67  # nobody takes mail for that address: bounce
EX_TEMPFAIL = 75  # try again later: the MTA keeps the message
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
#: Tried in order when a text part declares no charset, or a wrong one, and for raw 8-bit
#: headers: UTF-8 is strict enough to fail on other encodings; Windows-1251 is what old
#: clients in the firms' region send unlabelled.
FALLBACK_CHARSETS = ("utf-8", "windows-1251")
_TOKEN = re.compile(r"^(?P<model>[a-z0-9_]+(?:\.[a-z0-9_]+)+)-(?P<id>\d+)-(?P<sig>[a-z2-7]{16})$")
_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
_SALT = b"birga.mail.reply-token"
_KEY_LENGTH = 255
_BODY_LIMIT = 200_000

_signals = Namespace()
#: Sent after an inbound message was handled and committed. Keyword arguments: `message`
#: (the `InboundMail`), `record` (`(model, id)` it was filed on, or None), `addon` (the
#: handler's addon, or None for a reply). Listeners can notify a record's owner.
mail_received = _signals.signal("birga.mail-received")


class MalformedMail(ValueError):
    """The input is not an e-mail message we can read; `str()` says why (translated)."""


class UnroutableMail(LookupError):
    """No record and no addon takes this message; `str()` names the addresses tried."""


# -- tables ------------------------------------------------------------------------------
class SentMail(db.Model):
    """The Message-ID of a mail Birga sent for a record: what a reply's `In-Reply-To` names."""

    __tablename__ = "core_mail_sent"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_key: Mapped[str] = mapped_column(String(_KEY_LENGTH), unique=True)
    model: Mapped[str] = mapped_column(String(80))
    record_id: Mapped[int] = mapped_column(Integer)
    sent_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReceivedMail(db.Model):
    """One handled inbound message; the unique key makes a second delivery a no-op."""

    __tablename__ = "core_mail_received"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_key: Mapped[str] = mapped_column(String(_KEY_LENGTH), unique=True)
    sender: Mapped[str] = mapped_column(String(254))
    recipient: Mapped[str | None] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300), default="")
    #: "reply" (matched a record) or "handler" (an addon took it).
    route: Mapped[str] = mapped_column(String(20))
    addon: Mapped[str | None] = mapped_column(String(80))
    model: Mapped[str | None] = mapped_column(String(80))
    record_id: Mapped[int | None] = mapped_column(Integer)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def message_key(message_id: str | None, raw: bytes = b"") -> str:
    """What identifies a message in our tables: its Message-ID without brackets, or a hash
    of the bytes when it has none (or an absurdly long one)."""
    value = (message_id or "").strip().strip("<>").strip()
    if value and len(value) <= _KEY_LENGTH and value.isprintable():
        return value
    source = value.encode("utf-8", "surrogateescape") if value else raw
    return "sha256:" + hashlib.sha256(source).hexdigest()


# -- the parsed message ------------------------------------------------------------------
@dataclass(frozen=True)
class InboundAttachment:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class InboundMail:
    """A received message as plain data: what handlers get (no `email` objects, no ORM)."""

    sender: str  # the address only: "anna@example.lv"
    sender_name: str
    subject: str
    text: str  # always present: the plain part, or the HTML part's text
    html: str | None  # the HTML part as sent (not sanitised: sanitise before showing it)
    to: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    #: Addresses this copy was delivered for, in routing order (envelope first, then headers).
    recipients: tuple[str, ...] = ()
    attachments: tuple[InboundAttachment, ...] = ()
    message_id: str | None = None
    #: Message-IDs this one answers, newest first (In-Reply-To, then References backwards).
    references: tuple[str, ...] = ()
    date: datetime | None = None
    #: The address that routed the message to a handler (set just before the call).
    recipient: str | None = None
    key: str = field(default="", repr=False)

    @property
    def sender_display(self) -> str:
        return f"{self.sender_name} <{self.sender}>" if self.sender_name else self.sender


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    try:
        return codecs.lookup(charset.strip().strip('"').lower()).name
    except LookupError:
        return None


def decode_bytes(data: bytes, charset: str | None = None,
                 fallbacks: Sequence[str] = FALLBACK_CHARSETS) -> str:
    """Bytes in the declared charset when it fits, else the first fallback that decodes."""
    tried = []
    for name in (_codec(charset), *fallbacks):
        if name is None or name in tried:
            continue
        tried.append(name)
        try:
            return data.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode(_codec(charset) or "utf-8", errors="replace")


def _has_surrogates(value: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in value)


def _header(msg: Message, name: str, fallbacks: Sequence[str]) -> Any:
    """The parsed header; raw 8-bit bytes (no encoded-words) are decoded by guessing first,
    since `email` turns them into replacement characters."""
    raw = next((v for k, v in msg.raw_items() if k.lower() == name.lower()), None)
    if raw is None:
        return None
    if isinstance(raw, str) and _has_surrogates(raw):
        fixed = decode_bytes(raw.encode("ascii", "surrogateescape"), None, fallbacks)
        return policy.default.header_factory(name, re.sub(r"\r?\n(?=[ \t])", "", fixed))
    return msg[name]


def _text(msg: Message, name: str, fallbacks: Sequence[str]) -> str:
    value = _header(msg, name, fallbacks)
    return " ".join(str(value).split()) if value is not None else ""


def _addresses(msg: Message, name: str, fallbacks: Sequence[str]) -> list[tuple[str, str]]:
    values = [str(_header(msg, name, fallbacks) or "")] if msg.get(name) is not None else []
    return [(n, a.strip()) for n, a in getaddresses(values) if "@" in a]


def _part_text(part: Message, fallbacks: Sequence[str]) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    text = decode_bytes(payload, part.get_content_charset(), fallbacks)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _leaves(part: Message) -> Iterator[Message]:
    """Every non-multipart part; a forwarded message (message/rfc822) stays one part."""
    if part.get_content_maintype() == "multipart" and part.is_multipart():
        for sub in part.get_payload():
            yield from _leaves(sub)
    else:
        yield part


def _attachment(part: Message, fallbacks: Sequence[str]) -> InboundAttachment | None:
    filename = part.get_filename()
    disposition = part.get_content_disposition()
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload(0) if part.is_multipart() else None
        content = inner.as_bytes() if inner is not None else b""
        return InboundAttachment(filename or "forwarded.eml", "message/rfc822", content)
    if not filename and disposition != "attachment":
        return None  # an inline part without a name (a signature image): not a document
    payload = part.get_payload(decode=True)
    content = payload if isinstance(payload, bytes) else b""
    if filename and _has_surrogates(filename):
        filename = decode_bytes(filename.encode("ascii", "surrogateescape"), None, fallbacks)
    return InboundAttachment(filename or "attachment", part.get_content_type(), content)


def parse_mail(raw: bytes, recipients: Sequence[str] = (), *,
               fallback_charsets: Sequence[str] = FALLBACK_CHARSETS) -> InboundMail:
    """Read one RFC 822 message; raises `MalformedMail` for anything that is not one.

    `recipients` are the envelope recipients the MTA passed, if any; header recipients
    (Delivered-To, X-Original-To, To, Cc) follow them in routing order.
    """
    if not raw or not raw.strip():
        raise MalformedMail(_("The message is empty: nothing arrived on standard input."))
    try:
        msg = BytesParser(policy=policy.default).parsebytes(raw)
        if not msg.keys():
            raise MalformedMail(_("This is not an e-mail message: it has no headers."))
        senders = _addresses(msg, "From", fallback_charsets) or _addresses(
            msg, "Sender", fallback_charsets)
        if not senders:
            raise MalformedMail(_("The message has no valid sender address (From)."))
        sender_name, sender = senders[0]
        to = tuple(a for _n, a in _addresses(msg, "To", fallback_charsets))
        cc = tuple(a for _n, a in _addresses(msg, "Cc", fallback_charsets))
        routed: list[str] = [r.strip() for r in recipients if r and "@" in r]
        for name in ("Delivered-To", "X-Original-To"):
            for value in msg.get_all(name, []):
                routed.extend(a for _n, a in getaddresses([str(value)]) if "@" in a)
        routed.extend(to + cc)
        routing = tuple(dict.fromkeys(a.lower() for a in routed))
        if not routing:
            raise MalformedMail(_("The message names no recipient address."))

        text_part = msg.get_body(preferencelist=("plain",))
        html_part = msg.get_body(preferencelist=("html",))
        html = _part_text(html_part, fallback_charsets) if html_part is not None else None
        if text_part is not None:
            text = _part_text(text_part, fallback_charsets)
        elif html is not None:
            from .mail import html_to_text

            text = html_to_text(html)
        else:
            text = ""
        bodies = {id(p) for p in (text_part, html_part) if p is not None}
        attachments = tuple(att for part in _leaves(msg) if id(part) not in bodies
                            for att in [_attachment(part, fallback_charsets)] if att)

        referenced = _MESSAGE_ID.findall(_text(msg, "In-Reply-To", fallback_charsets))
        referenced += reversed(_MESSAGE_ID.findall(_text(msg, "References", fallback_charsets)))
        message_id = (_MESSAGE_ID.findall(_text(msg, "Message-ID", fallback_charsets))
                      or [None])[0]
        date_header = msg.get("Date")
        date = getattr(date_header, "datetime", None) if date_header is not None else None
        subject = _text(msg, "Subject", fallback_charsets)
    except MalformedMail:
        raise
    except Exception as exc:  # noqa: BLE001 - the email package fails in many ways on junk
        raise MalformedMail(_("The message could not be read: %(error)s",
                              error=str(exc) or type(exc).__name__)) from exc
    return InboundMail(
        sender=sender.lower(), sender_name=sender_name, subject=subject, text=text, html=html,
        to=to, cc=cc, recipients=routing, attachments=attachments, message_id=message_id,
        references=tuple(dict.fromkeys(referenced)), date=date,
        key=message_key(message_id, raw))


# -- reply addresses ---------------------------------------------------------------------
def _signature(app: Flask, model: str, record_id: int) -> str:
    secret = str(app.config["SECRET_KEY"]).encode()
    digest = hmac.new(secret, _SALT + f":{model}:{record_id}".encode(), hashlib.sha256).digest()
    return base64.b32encode(digest).decode().lower()[:16]


def _inbound_address(app: Flask) -> str | None:
    for key in ("BIRGA_MAIL_INBOUND_ADDRESS", "MAIL_INBOUND_ADDRESS"):
        value = app.config.get(key)
        if value:
            return parseaddr(str(value))[1] or None
    return None


def reply_address(record: tuple[str, int] | Any) -> str | None:
    """`crm+<model>-<id>-<signature>@firm.lv` for `record` (a `(model, id)` pair or a record),
    or None when `BIRGA_MAIL_INBOUND_ADDRESS` is not set (no gateway to reply to)."""
    app = current_app._get_current_object()
    base = _inbound_address(app)
    if not base or record is None:
        return None
    if not isinstance(record, tuple):
        from .records import record_ref

        record = record_ref(record)
    model, record_id = record
    local, _at, domain = base.rpartition("@")
    local = local.split("+", 1)[0]
    return f"{local}+{model}-{int(record_id)}-{_signature(app, model, int(record_id))}@{domain}"


def reply_record(address: str) -> tuple[str, int] | None:
    """The `(model, id)` a reply address names, when its signature is ours; else None."""
    local = address.strip().lower().rpartition("@")[0]
    _base, plus, token = local.partition("+")
    match = _TOKEN.match(token) if plus else None
    if match is None:
        return None
    model, record_id = match["model"], int(match["id"])
    expected = _signature(current_app._get_current_object(), model, record_id)
    return (model, record_id) if hmac.compare_digest(expected, match["sig"]) else None


def _remember_sent(app: Flask, *, message: Any, record: tuple[str, int] | None = None,
                   **_kw: Any) -> None:
    """`mail_sent` listener: keep the Message-ID of a mail sent for a record, in its own
    transaction (the mail has left; losing this row only loses threading)."""
    if not record or message is None or not message.get("Message-ID"):
        return
    key = message_key(str(message["Message-ID"]))
    try:
        with app.app_context(), db.engine.begin() as conn:
            conn.execute(insert(SentMail.__table__).values(
                message_key=key, model=record[0], record_id=int(record[1]), sent_at=utcnow()))
    except IntegrityError:
        pass  # delivered again (a retried job): the first row already routes replies
    except Exception:  # noqa: BLE001 - never turn a delivered mail into an error
        log.exception("could not record the Message-ID of a mail for %s #%s", *record)


mail_sent.connect(_remember_sent, weak=False)


# -- handlers ----------------------------------------------------------------------------
MailHandlerFunc = Callable[[InboundMail], Any]


@dataclass(frozen=True)
class MailHandler:
    pattern: str | re.Pattern[str]
    handler: MailHandlerFunc
    addon: str
    sequence: int = 100

    @property
    def exact(self) -> bool:
        return isinstance(self.pattern, str) and not any(c in self.pattern for c in "*?[")

    def matches(self, address: str) -> bool:
        if isinstance(self.pattern, re.Pattern):
            return self.pattern.fullmatch(address) is not None
        if self.exact:
            return address == self.pattern
        return fnmatch.fnmatchcase(address, self.pattern)


_HANDLERS: WeakKeyDictionary[Registry, list[MailHandler]] = WeakKeyDictionary()


def add_mail_handler(registry: Registry, address: str | re.Pattern[str],
                     handler: MailHandlerFunc, *, addon: str = "core",
                     sequence: int = 100) -> MailHandler:
    """Register `handler` for mail to `address`: an exact address, a `*`/`?` pattern
    (`leads@*`), or a compiled regular expression matched against the whole address."""
    if not callable(handler):
        raise AddonError(f"The mail handler of addon '{addon}' for '{address}' is not callable.",
                         addon=addon, fix="pass a function that takes an InboundMail.")
    if isinstance(address, str):
        address = address.strip().lower()
        if "@" not in address:
            raise AddonError(f"Addon '{addon}' registered mail for '{address}', which is no "
                             "e-mail address or pattern.", addon=addon,
                             fix="use 'leads@firm.example' or a pattern like 'leads@*'.")
    entry = MailHandler(address, handler, addon, sequence)
    handlers = _HANDLERS.setdefault(registry, [])
    handlers.append(entry)
    handlers.sort(key=lambda h: (h.sequence, h.addon))
    return entry


def register_mail_handler(app: Flask, address: str | re.Pattern[str],
                          handler: MailHandlerFunc, *, addon: str = "core",
                          sequence: int = 100) -> MailHandler:
    """`add_mail_handler` on `app`'s registry (addons use `addon.mail_handler(...)`)."""
    return add_mail_handler(app.extensions["birga"].registry, address, handler, addon=addon,
                            sequence=sequence)


def mail_handlers(app: Flask) -> list[MailHandler]:
    return list(_HANDLERS.get(app.extensions["birga"].registry, []))


def _candidates(app: Flask, mail: InboundMail) -> Iterator[tuple[MailHandler, str]]:
    """(handler, address) pairs to try: every exact match first, then patterns."""
    handlers = mail_handlers(app)
    for exact in (True, False):
        for address in mail.recipients:
            for entry in handlers:
                if entry.exact is exact and entry.matches(address):
                    yield entry, address


# -- routing -----------------------------------------------------------------------------
@dataclass(frozen=True)
class IngestResult:
    """What happened to one message: `route` is "reply", "handler" or "duplicate"."""

    route: str
    key: str
    record: tuple[str, int] | None = None
    addon: str | None = None
    recipient: str | None = None
    refused_attachments: tuple[str, ...] = ()


def _existing_record(ref: tuple[str, int]) -> tuple[str, int] | None:
    from .records import get_record

    return ref if get_record(ref[0], ref[1]) is not None else None


def _route_reply(mail: InboundMail) -> tuple[tuple[str, int], str | None] | None:
    for address in mail.recipients:
        ref = reply_record(address)
        if ref is not None and _existing_record(ref):
            return ref, address
    if mail.references:
        keys = [message_key(ref) for ref in mail.references[:100]]  # a sane IN list
        rows = {row.message_key: row for row in db.session.scalars(
            select(SentMail).where(SentMail.message_key.in_(keys)))}
        for key in keys:  # newest reference first
            row = rows.get(key)
            if row is not None and _existing_record((row.model, row.record_id)):
                return (row.model, row.record_id), None
    return None


def _as_ref(value: Any) -> tuple[str, int] | None:
    """A handler's return value as a record link, if it is one."""
    if value is None or value is True or value is False:
        return None
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        return value[0], int(value[1])
    from .records import record_name, record_ref

    if record_name(value) is not None:
        db.session.flush()
        return record_ref(value)
    return None


def _entry_body(mail: InboundMail, refused: Sequence[tuple[str, str]]) -> list[Any]:
    """Sender line, then the body. The plain part is preferred: it is what the client wrote,
    line breaks intact; an HTML-only mail is sanitised (scripts, styles, handlers dropped).
    The lines are lazy messages: each reader sees them in her language."""
    from .timeline import paragraphs, sanitize

    if mail.text.strip():
        body = paragraphs(mail.text[:_BODY_LIMIT])
    else:
        body = sanitize((mail.html or "")[:_BODY_LIMIT])
    lines: list[Any] = [_l("From: %(sender)s", sender=mail.sender_display)]
    lines += [_l("Attachment not kept: %(name)s (%(reason)s)", name=name, reason=reason)
              for name, reason in refused]
    return [*lines, body]


def _file_on_record(mail: InboundMail, ref: tuple[str, int]) -> tuple[str, ...]:
    """The mail on the record's timeline, its attachments on the record; returns the names of
    attachments the attachments service refused (type or size limits)."""
    from .storage import AttachmentRefused, save_attachment
    from .timeline import log_entry

    model, record_id = ref
    refused: list[tuple[str, str]] = []
    for att in mail.attachments:
        try:
            save_attachment(model, record_id, io.BytesIO(att.content), att.filename)
        except AttachmentRefused as exc:
            refused.append((att.filename, str(exc)))
    log_entry(model, record_id, "email", _entry_body(mail, refused),
              subject=mail.subject[:300] or None)
    return tuple(name for name, _reason in refused)


def _claim(mail: InboundMail, route: str, *, recipient: str | None = None,
           addon: str | None = None, record: tuple[str, int] | None = None) -> ReceivedMail:
    row = ReceivedMail(message_key=mail.key, sender=mail.sender[:254],
                       recipient=(recipient or "")[:254] or None, subject=mail.subject[:300],
                       route=route, addon=addon, model=record[0] if record else None,
                       record_id=record[1] if record else None)
    db.session.add(row)
    db.session.flush()  # the unique key: a concurrent delivery of the same message waits here
    return row


def _already_handled(key: str) -> bool:
    return db.session.scalar(select(ReceivedMail.id).where(ReceivedMail.message_key == key)
                             ) is not None


def _handle(mail: InboundMail) -> IngestResult:
    app = current_app._get_current_object()
    if _already_handled(mail.key):
        return IngestResult("duplicate", mail.key)
    reply = _route_reply(mail)
    if reply is not None:
        ref, address = reply
        _claim(mail, "reply", recipient=address, record=ref)
        refused = _file_on_record(mail, ref)
        return IngestResult("reply", mail.key, ref, recipient=address,
                            refused_attachments=refused)
    for entry, address in _candidates(app, mail):
        row = _claim(mail, "handler", recipient=address, addon=entry.addon)
        outcome = entry.handler(replace(mail, recipient=address))
        if outcome is False:  # declined: the next handler may take it
            db.session.delete(row)
            db.session.flush()
            continue
        ref = _as_ref(outcome)
        refused: tuple[str, ...] = ()
        if ref is not None:
            row.model, row.record_id = ref
            refused = _file_on_record(mail, ref)
        return IngestResult("handler", mail.key, ref, entry.addon, address, refused)
    raise UnroutableMail(_("No record or addon takes mail for %(addresses)s.",
                           addresses=", ".join(mail.recipients)))


def ingest(mail: InboundMail | bytes, recipients: Sequence[str] = ()) -> IngestResult:
    """Route one message in the current app and commit; a repeated message is a no-op.

    Raises `MalformedMail`, `UnroutableMail`, or the database's error (the caller decides
    whether that is temporary).
    """
    if isinstance(mail, bytes):
        mail = parse_mail(mail, recipients)
    try:
        result = _handle(mail)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        if _already_handled(mail.key):  # the same message, delivered twice at once
            return IngestResult("duplicate", mail.key)
        raise
    except BaseException:
        db.session.rollback()
        raise
    if result.route != "duplicate":
        mail_received.send(current_app._get_current_object(), message=mail,
                           record=result.record, addon=result.addon)
    return result


# -- command line ------------------------------------------------------------------------
def database_down(exc: BaseException) -> bool:
    """Errors that mean "the database is not there right now", worth a retry."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


def _exit(ctx: click.Context, code: int, message: str) -> None:
    click.echo(f"birga mail ingest: {message}", err=True)
    ctx.exit(code)


@click.group("mail")
def mail_cli() -> None:
    """Inbound e-mail: the MTA pipes messages into `birga mail ingest`."""


@mail_cli.command("ingest")
@click.option("-r", "--recipient", "recipients", multiple=True, metavar="ADDRESS",
              help="Envelope recipient as the MTA passes it (Postfix: ${original_recipient}); "
                   "repeatable. Defaults to $ORIGINAL_RECIPIENT, then the headers.")
@click.pass_context
def ingest_command(ctx: click.Context, recipients: tuple[str, ...]) -> None:
    """Read ONE RFC 822 message on standard input and route it.

    Exit codes (sysexits): 0 handled, 65 not a readable message, 67 nobody takes it,
    75 temporary failure (database down): the MTA retries later.
    """
    limit = int(os.environ.get("BIRGA_MAIL_INBOUND_MAX_BYTES") or DEFAULT_MAX_BYTES)
    raw = sys.stdin.buffer.read(limit + 1)
    if len(raw) > limit:
        _exit(ctx, EX_DATAERR, ngettext("The message is larger than %(num)d byte.",
                                        "The message is larger than %(num)d bytes.", limit))
    envelope = list(recipients) or [os.environ[k] for k in ("ORIGINAL_RECIPIENT",)
                                    if os.environ.get(k)]
    try:
        mail = parse_mail(raw, envelope)
    except MalformedMail as exc:
        _exit(ctx, EX_DATAERR, str(exc))
    try:
        app = ctx.ensure_object(ScriptInfo).load_app()
    except Exception as exc:  # noqa: BLE001 - decide below whether it is worth a retry
        if database_down(exc):
            _exit(ctx, EX_TEMPFAIL, _("The database is not reachable (%(error)s); the mail "
                                      "server will retry later.", error=_first_line(exc)))
        raise
    with app.app_context():
        try:
            result = ingest(mail)
        except UnroutableMail as exc:
            _exit(ctx, EX_NOUSER, str(exc))
        except Exception as exc:  # noqa: BLE001 - never bounce what a retry may deliver
            if database_down(exc):
                message = _("The database is not reachable (%(error)s); the mail server will "
                            "retry later.", error=_first_line(exc))
            else:
                log.exception("inbound mail %s could not be handled", mail.key)
                message = _("The message could not be handled (%(error)s); the mail server "
                            "will retry later.", error=_first_line(exc))
            _exit(ctx, EX_TEMPFAIL, message)
    if result.route == "duplicate":
        click.echo(_("Already handled: %(key)s", key=result.key))
    elif result.record is not None:
        click.echo(_("Filed on %(model)s #%(id)s: %(key)s", model=result.record[0],
                     id=result.record[1], key=result.key))
    else:
        click.echo(_("Handled by %(addon)s: %(key)s", addon=result.addon, key=result.key))
    for name in result.refused_attachments:
        click.echo(_("Attachment not kept: %(name)s", name=name), err=True)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc) or type(exc).__name__
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__

