"""The public, versioned surface for addons. Partners import from here and nowhere else in core.

    from core.api import db, Blueprint, _, _l, login_required, render_template

API_VERSION follows semantic versioning: additions bump the minor number, removals or changed
behaviour the major one. See docs/addons.md.
"""
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_ngettext, lazy_pgettext, ngettext, npgettext, pgettext
from flask_login import current_user, login_required
from flask_wtf import FlaskForm

from . import addon_enabled
from .addons import Addon, AddonError
from .extensions import db
from .formatting import format_date, format_datetime, format_money, format_number, format_percent
from .jobs import crontab, current_job, once, periodic_task, task
from .loader import AddonContext
from .locking import (
    Conflict,
    ConflictError,
    FieldChange,
    VersionedMixin,
    save_or_conflict,
    save_or_raise,
)
from .mail import Attachment, MailError, queue_mail, send_mail
from .models import User, utcnow
from .refdata import (
    Country,
    Currency,
    ExchangeRate,
    RateNotFound,
    VatRate,
    company_currency,
    convert,
    country_name,
    currency_name,
    rate_on,
    seed_reference_data,
    set_exchange_rate,
    set_vat_rate,
    vat_amount,
    vat_rate,
)
from .sequences import NumberSequence, UnknownSequence, define_sequence, next_number
from .signals import attachment_removing, mail_sent

API_VERSION = "1.6"

__all__ = [
    "API_VERSION", "Addon", "AddonContext", "AddonError", "Blueprint", "FlaskForm", "User", "_",
    "addon_enabled",
    "_l", "abort", "current_app", "current_user", "db", "flash", "format_date",
    "format_datetime", "format_money", "format_number", "format_percent", "lazy_ngettext",
    "lazy_pgettext", "login_required", "ngettext", "npgettext", "pgettext", "redirect",
    "render_template", "request", "url_for", "utcnow",
]
# Platform services: document numbers, reference data, optimistic locking.
__all__ += [
    "Conflict", "ConflictError", "Country", "Currency", "ExchangeRate", "FieldChange",
    "NumberSequence", "RateNotFound", "UnknownSequence", "VatRate", "VersionedMixin",
    "company_currency", "convert", "country_name", "currency_name", "define_sequence",
    "next_number", "rate_on", "save_or_conflict", "save_or_raise", "seed_reference_data",
    "set_exchange_rate", "set_vat_rate", "vat_amount", "vat_rate",
]
# Background jobs and outgoing e-mail (core.jobs, core.mail).
__all__ += [
    "Attachment", "MailError", "attachment_removing", "crontab", "current_job", "mail_sent", "once",
    "periodic_task",
    "queue_mail", "send_mail", "task",
]
# Access by position: roles, teams, record rules and the query gateway (core.security).
from .security import (  # noqa: E402
    Role,
    Team,
    assign_roles,
    get_or_404,
    permission_required,
    register_record_rule,
    rule_clause,
    rule_clause_on,
    scoped,
    seed_default_roles,
    visible,
)

__all__ += [
    "Role", "Team", "assign_roles", "get_or_404", "permission_required", "register_record_rule",
    "rule_clause", "rule_clause_on", "scoped", "seed_default_roles", "visible",
]
# Timeline, audit log and attachments on any record (core.timeline, core.audit, core.storage).
from .audit import AuditLog, audit, audit_changes, audit_subject  # noqa: E402
from .records import (  # noqa: E402
    can_read,
    record_ref,
    register_record_model,
    register_record_reader,
)
from .storage import Attachment as RecordAttachment  # noqa: E402
from .storage import AttachmentRefused, attachments_for, save_attachment  # noqa: E402
from .timeline import (  # noqa: E402
    Notification,
    TimelineEntry,
    TimelineMixin,
    add_note,
    day,
    localized,
    log_entry,
    money,
    notify,
)

__all__ += [
    "AttachmentRefused", "AuditLog", "Notification", "RecordAttachment", "TimelineEntry",
    "TimelineMixin", "add_note", "attachments_for", "audit", "audit_changes", "audit_subject",
    "can_read", "log_entry", "notify", "record_ref", "register_record_model",
    "register_record_reader", "save_attachment",
]
# Values inside timeline messages, formatted for each reader (core.messages).
__all__ += ["day", "localized", "money"]
# Inbound e-mail: handlers for addresses, signed reply addresses (core.mail_inbound).
from .mail_inbound import (  # noqa: E402
    InboundAttachment,
    InboundMail,
    mail_received,
    register_mail_handler,
    reply_address,
)

__all__ += ["InboundAttachment", "InboundMail", "mail_received", "register_mail_handler",
            "reply_address"]
# Scheduled activities on any record and their reminders (core.activities).
from .activities import (  # noqa: E402
    Activity,
    ActivityError,
    ActivityType,
    mark_done,
    schedule_activity,
    seed_activity_types,
    visible_activities,
)

__all__ += ["Activity", "ActivityError", "ActivityType", "mark_done", "schedule_activity",
            "seed_activity_types", "visible_activities"]
# Fast pages: links built once per list (core.web; also a Jinja global of the same name) and
# column reads without the ORM's per-statement work (core.reading).
from .read_requests import reads_in_transaction  # noqa: E402
from .reading import read  # noqa: E402
from .web import url_pattern  # noqa: E402

__all__ += ["read", "reads_in_transaction", "url_pattern"]
# Rarely changed rows cached per worker until they change anywhere (core.cache).
from .cache import invalidate as invalidate_shared_cache  # noqa: E402
from .cache import shared_cache  # noqa: E402

__all__ += ["invalidate_shared_cache", "shared_cache"]
# Planner statistics after bulk changes (core.dbstats): SQLite has no autovacuum.
from .dbstats import refresh_statistics  # noqa: E402

__all__ += ["refresh_statistics"]
# Fast money, date and number for list pages: the filters' exact text (core.formatters).
from .formatters import Formatters, formatters  # noqa: E402
from .html import escape_text, option_tags  # noqa: E402

__all__ += ["Formatters", "escape_text", "formatters", "option_tags"]
# The firm's own details, edited on Settings → Company details (core.company).
from .company import company_details  # noqa: E402

__all__ += ["company_details"]
# JSON views open to personal API tokens (`Authorization: Bearer birga_…`; core.api_tokens).
from .api_tokens import current_api_token, token_api  # noqa: E402

__all__ += ["current_api_token", "token_api"]
