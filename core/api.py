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

from .addons import Addon, AddonError
from .extensions import db
from .formatting import format_date, format_datetime, format_money, format_number, format_percent
from .loader import AddonContext
from .models import User, utcnow

API_VERSION = "1.0"

__all__ = [
    "API_VERSION", "Addon", "AddonContext", "AddonError", "Blueprint", "FlaskForm", "User", "_",
    "_l", "abort", "current_app", "current_user", "db", "flash", "format_date",
    "format_datetime", "format_money", "format_number", "format_percent", "lazy_ngettext",
    "lazy_pgettext", "login_required", "ngettext", "npgettext", "pgettext", "redirect",
    "render_template", "request", "url_for", "utcnow",
]
