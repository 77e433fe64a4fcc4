"""Custom fields an admin adds without code (seed 002): their admin pages, and their values
on the form, the card, the list, the filters and the search box.

Values live in `CustomValue`, one typed column per kind, so number and date filters compare
numbers and dates (indexed per field) instead of text. Text and choice values are made
searchable by feeding their words to `services.refresh_search` through `TOKEN_SOURCES`, so
every write path (form, import, merge) indexes them the same way.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, exists, func, not_, select
from wtforms import DateField, DecimalField, SelectField, StringField
from wtforms.validators import Length, Optional

from core.api import db, permission_required, read, shared_cache
from core.i18n import LANGUAGES

from . import services
from .models import CUSTOM_FIELD_KINDS, CustomField, CustomValue, Partner, value_key

KIND_LABELS = {"text": _l("Text"), "number": _l("Number"), "date": _l("Date"),
               "choice": _l("Choice"), "bool": _l("Yes / no")}
APPLIES_LABELS = {"both": _l("People and companies"), "person": _l("People"),
                  "company": _l("Companies")}
_CODE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


# -- reading -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class FieldDef:
    """A custom field's definition as pages read it: an immutable copy of the row that every
    request of a worker can share (`core.cache`), unlike the ORM object."""

    id: int
    code: str
    labels: Mapping[str, str]
    kind: str
    choices: tuple[Mapping[str, Any], ...]
    applies_to: str
    sequence: int
    show_in_list: bool
    active: bool


#: A field from the admin's ORM rows or from `active_fields`: both read the same.
AnyField = CustomField | FieldDef


@shared_cache(CustomField)
def _active_field_defs() -> tuple[FieldDef, ...]:
    rows = read(select(CustomField.id, CustomField.code, CustomField.labels, CustomField.kind,
                       CustomField.choices, CustomField.applies_to, CustomField.sequence,
                       CustomField.show_in_list, CustomField.active)
                .where(CustomField.active.is_(True))
                .order_by(CustomField.sequence, CustomField.id))
    return tuple(FieldDef(r.id, r.code, MappingProxyType(dict(r.labels or {})), r.kind,
                          tuple(MappingProxyType(dict(c)) for c in r.choices or ()),
                          r.applies_to, r.sequence, r.show_in_list, r.active) for r in rows)


def active_fields(kind: str | None = None) -> list[FieldDef]:
    """The active fields (for one partner kind, if given), in their admin-set order; read
    once per worker until an admin changes a field (`core.cache`)."""
    fields = _active_field_defs()
    if kind in ("person", "company"):
        return [f for f in fields if f.applies_to in ("both", kind)]
    return list(fields)


def _lang() -> str:
    return str(get_locale() or "en").split("_")[0]


def field_label(field: AnyField, lang: str | None = None) -> str:
    """The label in the reader's language, else English, else any, else the code."""
    labels = field.labels or {}
    lang = lang or _lang()
    return labels.get(lang) or labels.get("en") or next(
        (v for v in labels.values() if v), field.code)


def choice_options(field: AnyField, lang: str | None = None) -> list[tuple[str, str]]:
    lang = lang or _lang()
    return [(c["value"], (c.get("labels") or {}).get(lang) or (c.get("labels") or {}).get("en")
             or c["value"]) for c in field.choices or []]


def value_of(row: CustomValue, field: AnyField) -> Any:
    return {"text": row.value_text, "choice": row.value_text, "number": row.value_number,
            "date": row.value_date, "bool": row.value_bool}[field.kind]


def values_for(partner_ids: Iterable[int],
               fields: Iterable[AnyField]) -> dict[int, dict[int, Any]]:
    """`{partner id: {field id: value}}` for many partners in one query (list pages)."""
    ids, by_id = list(partner_ids), {f.id: f for f in fields}
    if not ids or not by_id:
        return {}
    rows = db.session.scalars(select(CustomValue).where(
        CustomValue.partner_id.in_(ids), CustomValue.field_id.in_(list(by_id))))
    found: dict[int, dict[int, Any]] = {}
    for row in rows:
        found.setdefault(row.partner_id, {})[row.field_id] = value_of(row, by_id[row.field_id])
    return found


def display(field: AnyField, value: Any) -> str:
    """A value as the reader should see it (choice labels, yes/no, localised numbers/dates)."""
    from core.formatting import format_date, format_number

    if value is None or value == "":
        return ""
    if field.kind == "choice":
        return dict(choice_options(field)).get(value, value)
    if field.kind == "bool":
        return _("Yes") if value else _("No")
    if field.kind == "number":
        return format_number(value)
    if field.kind == "date":
        return format_date(value)
    return str(value)


# -- writing -------------------------------------------------------------------------------
def form_field(field: AnyField) -> Any:
    """An unbound WTForms field for the partner form."""
    label = field_label(field)
    if field.kind == "number":
        return DecimalField(label, validators=[Optional()], places=None)
    if field.kind == "date":
        return DateField(label, validators=[Optional()])
    if field.kind == "choice":
        return SelectField(label, choices=[("", "—"), *choice_options(field)],
                           validators=[Optional()])
    if field.kind == "bool":
        return SelectField(label, choices=[("", "—"), ("1", _("Yes")), ("0", _("No"))],
                           validators=[Optional()])
    return StringField(label, validators=[Optional(), Length(max=500)])


def form_value(field: AnyField, raw: Any) -> Any:
    """What the partner form's field holds, as the value to store (None: empty)."""
    if raw is None or raw == "":
        return None
    if field.kind == "bool":
        return raw in ("1", True, "true", "yes")
    if field.kind == "text":
        return str(raw).strip() or None
    return raw


def initial_value(field: AnyField, value: Any) -> Any:
    """A stored value as the partner form's field expects it."""
    if field.kind == "bool":
        return "" if value is None else ("1" if value else "0")
    return value


def save_values(partner: Partner, values: Mapping[int, Any],
                fields: Iterable[AnyField]) -> None:
    """Store `{field id: value}` for a flushed partner; None removes the value."""
    by_id = {f.id: f for f in fields}
    existing = {row.field_id: row for row in db.session.scalars(
        select(CustomValue).where(CustomValue.partner_id == partner.id))}
    for field_id, value in values.items():
        field = by_id.get(field_id)
        if field is None:
            continue
        row = existing.get(field_id)
        if value is None:
            if row is not None:
                db.session.delete(row)
            continue
        if row is None:
            row = CustomValue(partner_id=partner.id, field_id=field_id)
            db.session.add(row)
        row.value_text = str(value)[:500] if field.kind in ("text", "choice") else None
        row.value_number = Decimal(value) if field.kind == "number" else None
        row.value_date = value if field.kind == "date" else None
        row.value_bool = bool(value) if field.kind == "bool" else None


def _search_texts(partner: Partner) -> list[str]:
    """Words of the partner's text and choice values (all label languages) for the search."""
    if partner.id is None:
        return []
    rows = db.session.execute(
        select(CustomField, CustomValue.value_text)
        .join(CustomValue, CustomValue.field_id == CustomField.id)
        .where(CustomValue.partner_id == partner.id, CustomField.active.is_(True),
               CustomField.kind.in_(("text", "choice")), CustomValue.value_text.is_not(None)))
    texts: list[str] = []
    for field, text in rows:
        texts.append(text)
        if field.kind == "choice":
            for choice in field.choices or []:
                if choice.get("value") == text:
                    texts.extend(v for v in (choice.get("labels") or {}).values() if v)
    return texts


if _search_texts not in services.TOKEN_SOURCES:
    services.TOKEN_SOURCES.append(_search_texts)


# -- filtering -----------------------------------------------------------------------------
def _value_exists(field_id: int, *conditions: Any) -> Any:
    return exists(select(CustomValue.id).where(
        CustomValue.partner_id == Partner.id, CustomValue.field_id == field_id, *conditions))


def _parse(field: AnyField, raw: str) -> Any:
    try:
        if field.kind == "number":
            return Decimal(raw.replace(",", ".").replace(" ", ""))
        if field.kind == "date":
            return date.fromisoformat(raw)
    except (InvalidOperation, ValueError):
        return None
    return raw


def filter_conditions(fields: Iterable[AnyField], args: Mapping[str, str]) -> list[Any]:
    """SQL conditions from the list's `cf<id>` / `cf<id>_min` / `cf<id>_max` parameters.

    Text: contains, with script, case and diacritics folded on both sides; choice:
    equals; yes/no: `1` has it set, `0` has it unset or no; number and date: ranges.
    """
    conditions = []
    for field in fields:
        key = f"cf{field.id}"
        raw = (args.get(key) or "").strip()
        if field.kind == "text" and raw:
            # Folded on both sides ("buve" finds "Būve", "проект" finds "ПРОЕКТ"); a needle
            # that folds to nothing (punctuation) is looked for as typed.
            folded = value_key(raw)
            column = CustomValue.value_key if folded else func.lower(CustomValue.value_text)
            conditions.append(_value_exists(field.id, column.like(
                _contains(folded or raw.lower()), escape="\\")))
        elif field.kind == "choice" and raw:
            conditions.append(_value_exists(field.id, CustomValue.value_text == raw))
        elif field.kind == "bool" and raw in ("0", "1"):
            is_set = _value_exists(field.id, CustomValue.value_bool.is_(True))
            conditions.append(is_set if raw == "1" else not_(is_set))
        elif field.kind in ("number", "date"):
            column = CustomValue.value_number if field.kind == "number" \
                else CustomValue.value_date
            bounds = []
            low = _parse(field, (args.get(key + "_min") or "").strip())
            high = _parse(field, (args.get(key + "_max") or "").strip())
            if low not in (None, ""):
                bounds.append(column >= low)
            if high not in (None, ""):
                bounds.append(column <= high)
            if bounds:
                conditions.append(_value_exists(field.id, and_(*bounds)))
    return conditions


def _contains(text: str) -> str:
    """A LIKE pattern for "contains `text`", its wildcards escaped."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def filter_keys(fields: Iterable[AnyField]) -> list[str]:
    """Query-string keys the custom filters use (kept in saved filters and page links)."""
    keys = []
    for field in fields:
        if field.kind in ("number", "date"):
            keys += [f"cf{field.id}_min", f"cf{field.id}_max"]
        else:
            keys.append(f"cf{field.id}")
    return keys


# -- admin pages ---------------------------------------------------------------------------
def _admin_form(field: CustomField | None):  # noqa: ANN202 - a form instance built per request
    from .forms import custom_field_form

    return custom_field_form(field)


def _slug(text: str) -> str:
    from .folding import fold

    slug = re.sub(r"[^a-z0-9]+", "_", fold(text)).strip("_")[:40]
    return slug if slug and slug[0].isalpha() else ("f_" + slug)[:40]


def _choices_from(form: Any, previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Options from one textarea per language, line by line.

    Stored values are option codes, so an option keeps its code when its English label stays
    (wherever the line moved), else the code of the option at the same line (a renamed
    option), else a new code from the label.
    """
    lines = {lang: [x.strip() for x in (getattr(form, f"choices_{lang}").data or "")
                    .splitlines()] for lang in LANGUAGES}
    base = [x for x in lines["en"] if x]
    by_label = {(c.get("labels") or {}).get("en"): c["value"] for c in previous or []}
    kept = {by_label[label] for label in base if label in by_label}
    by_position = {i: c["value"] for i, c in enumerate(previous or [])
                   if c["value"] not in kept}
    choices, used = [], set()
    for index, label in enumerate(base):
        code = by_label.get(label) or by_position.get(index) or _slug(label) \
            or f"option_{index + 1}"
        while code in used:
            code = f"{code}_{index + 1}"
        used.add(code)
        labels = {"en": label}
        for lang in LANGUAGES:
            own = [x for x in lines[lang] if x] if lang != "en" else []
            if lang != "en" and index < len(own):
                labels[lang] = own[index]
        choices.append({"value": code, "labels": labels})
    return choices


@permission_required("contacts.manage")
def custom_fields():
    fields = db.session.scalars(select(CustomField).order_by(
        CustomField.sequence, CustomField.id)).all()
    return render_template("contacts/custom_fields.html", fields=fields,
                           field_label=field_label, kinds=KIND_LABELS, applies=APPLIES_LABELS)


@permission_required("contacts.manage")
def custom_field_edit(field_id: int | None = None):
    field = db.session.get(CustomField, field_id) if field_id is not None else None
    if field_id is not None and field is None:
        abort(404)
    form = _admin_form(field)
    if form.validate_on_submit():
        labels = {lang: getattr(form, f"label_{lang}").data.strip() for lang in LANGUAGES
                  if (getattr(form, f"label_{lang}").data or "").strip()}
        code = (form.code.data or "").strip() or _slug(labels.get("en") or
                                                       next(iter(labels.values()), ""))
        clash = db.session.scalar(select(CustomField.id).where(
            CustomField.code == code, CustomField.id != (field.id if field else -1)))
        if not _CODE.match(code) or clash:
            form.code.errors.append(_("Use a unique code of small Latin letters, digits and "
                                      "underscores, starting with a letter."))
        elif form.kind.data == "choice" and not [
                x for x in (form.choices_en.data or "").splitlines() if x.strip()]:
            form.choices_en.errors.append(_("A choice field needs at least one option."))
        else:
            if field is None:
                field = CustomField(code=code, kind=form.kind.data)
                db.session.add(field)
            field.code = code
            field.labels = labels
            field.applies_to = form.applies_to.data
            field.sequence = form.sequence.data or 100
            field.show_in_list = bool(form.show_in_list.data)
            field.active = bool(form.active.data)
            field.choices = _choices_from(form, field.choices or []) \
                if field.kind == "choice" else []
            db.session.commit()
            flash(_("Custom field saved."), "success")
            return redirect(url_for("contacts.custom_fields"))
    return render_template("contacts/custom_field_form.html", form=form, field=field,
                           languages=LANGUAGES)


def register_views(bp: Blueprint) -> None:
    """The admin pages, on the addon's blueprint (views.py calls this)."""
    bp.add_url_rule("/settings/fields", "custom_fields", custom_fields)
    bp.add_url_rule("/settings/fields/new", "custom_field_new", custom_field_edit,
                    methods=["GET", "POST"])
    bp.add_url_rule("/settings/fields/<int:field_id>", "custom_field_edit", custom_field_edit,
                    methods=["GET", "POST"])


__all__ = ["APPLIES_LABELS", "CUSTOM_FIELD_KINDS", "KIND_LABELS", "active_fields",
           "choice_options", "display", "field_label", "filter_conditions", "filter_keys",
           "form_field", "form_value", "initial_value", "register_views", "save_values",
           "values_for"]
