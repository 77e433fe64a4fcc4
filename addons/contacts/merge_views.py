"""The merge screen and the managers' "possible duplicates" page.

Routes live on the contacts blueprint (`views.bp`); this module is imported from the bottom
of `views.py`. Every partner is fetched through the record-rule gateway, so a partner the user
may not see is a 404 here as everywhere.
"""
from __future__ import annotations

from typing import Any

from flask import current_app
from sqlalchemy import select

from core.api import (
    _,
    abort,
    db,
    flash,
    format_date,
    get_or_404,
    ngettext,
    permission_required,
    redirect,
    render_template,
    request,
    scoped,
    url_for,
)

from .duplicates import REASONS, count_pairs, duplicate_pairs
from .merge import (
    CUSTOM_PREFIX,
    MERGE_FIELDS,
    MergeError,
    _custom_values,
    custom_value,
    default_choices,
    merge_partners,
)
from .models import STATUS_LABELS, CustomField, Partner
from .views import bp

#: Card endpoints the UI module may define, tried in order (the merge pages only link to it).
CARD_ENDPOINTS = ("contacts.card", "contacts.show", "contacts.partner", "contacts.detail",
                  "contacts.view")
PAGE_SIZE = 50
MAX_MERGE = 10


def card_url(partner_id: int) -> str | None:
    """The partner's card, whichever endpoint name the card view uses; None without one."""
    rules = current_app.url_map._rules_by_endpoint  # noqa: SLF001 - read-only lookup
    for endpoint in CARD_ENDPOINTS:
        for rule in rules.get(endpoint, ()):
            if len(rule.arguments) == 1:
                return url_for(endpoint, **{next(iter(rule.arguments)): partner_id})
    return None


def _label(name: str) -> str:
    column = Partner.__table__.c.get(name)
    label = column.info.get("label") if column is not None else None
    return str(label or name)


def _shown(name: str, value: Any, partner: Partner, names: dict[int, str]) -> str:
    from core.api import User, country_name

    if value is None or value == "":
        return ""
    if name == "company_id":
        return names.get(value) or (partner.company_name or str(value))
    if name == "owner_id":
        user = db.session.get(User, value)
        return user.display_name if user is not None else str(value)
    if name == "status":
        return str(STATUS_LABELS.get(value, value))
    if name == "country":
        return country_name(value)
    if name == "birthday":
        return format_date(value)
    if name == "phone":
        from .services import display_phone

        return display_phone(value)
    if isinstance(value, bool):
        return "✓" if value else "✗"
    return str(value)


def _rows(partners: list[Partner]) -> list[dict[str, Any]]:
    """One row per field where the partners differ: label, values per partner, default."""
    defaults = default_choices(partners)
    company_ids = {p.company_id for p in partners if p.company_id}
    names = dict(db.session.execute(select(Partner.id, Partner.name).where(
        Partner.id.in_(company_ids))).all()) if company_ids else {}
    skip = {"name"} if partners[0].kind == "person" else {"first_name", "middle_name",
                                                          "last_name", "company_id"}
    rows = []
    for name in MERGE_FIELDS:
        if name in skip:
            continue
        values = [_shown(name, getattr(p, name), p, names) for p in partners]
        if len(set(values)) > 1:
            rows.append({"key": name, "label": _label(name), "values": values,
                         "default": defaults[name]})
    custom = _custom_values([p.id for p in partners])
    fields = {f.id: f for f in db.session.scalars(select(CustomField))}
    locale = str(request.accept_languages.best or "en")[:2]
    for key, default in defaults.items():
        if not key.startswith(CUSTOM_PREFIX):
            continue
        fid = int(key[len(CUSTOM_PREFIX):])
        values = [custom_value(custom.get(p.id, {}).get(fid)) for p in partners]
        shown = ["" if v is None else str(v) for v in values]
        if len(set(shown)) > 1:
            spec = fields.get(fid)
            label = (spec.labels or {}).get(locale) or (spec.labels or {}).get("en") \
                or spec.code if spec else key
            rows.append({"key": key, "label": label, "values": shown, "default": default})
    return rows


def _ids(values: list[str]) -> list[int]:
    ids = []
    for value in values:
        for part in value.split(","):
            if part.strip().isdigit():
                ids.append(int(part.strip()))
    return list(dict.fromkeys(ids))


@bp.route("/merge", methods=["GET", "POST"])
@permission_required("contacts.write")
def merge():
    """GET `?ids=1&ids=2[&survivor=1]`: the choice per field; POST: the merge."""
    source = request.form if request.method == "POST" else request.args
    ids = _ids(source.getlist("ids"))
    if len(ids) < 2:
        flash(_("Choose at least two contacts to merge."), "error")
        return redirect(request.referrer or url_for("contacts.duplicates"))
    if len(ids) > MAX_MERGE:
        abort(400)
    partners = [get_or_404(Partner, pid) for pid in ids]
    survivor_id = source.get("survivor", type=int)
    if survivor_id not in ids:
        survivor_id = ids[0]
    partners.sort(key=lambda p: p.id != survivor_id)
    if request.method == "POST":
        choices: dict[str, int] = {}
        for key in request.form:
            if key.startswith("choice_"):
                value = request.form.get(key, type=int)
                if value is not None:
                    choices[key[len("choice_"):]] = value
        versions = {p.id: request.form.get(f"version_{p.id}", type=int) for p in partners
                    if request.form.get(f"version_{p.id}", type=int) is not None}
        try:
            result = merge_partners(survivor_id, [p.id for p in partners[1:]], choices,
                                    versions=versions)
            db.session.commit()
        except MergeError as exc:
            db.session.rollback()
            flash(str(exc), "error")
            return redirect(url_for("contacts.merge", ids=ids, survivor=survivor_id))
        except Exception:
            db.session.rollback()
            raise
        flash(ngettext("%(num)d contact merged.", "%(num)d contacts merged.",
                       len(result.merged_ids) + 1), "success")
        return redirect(card_url(result.survivor_id) or url_for("contacts.duplicates"))
    kinds = {p.kind for p in partners}
    return render_template("contacts/merge.html", partners=partners, rows=_rows(partners),
                           survivor_id=survivor_id, ids=ids, mixed=len(kinds) > 1,
                           card_url=card_url)


@bp.route("/duplicates")
@permission_required("contacts.manage")
def duplicates():
    """Pairs of visible contacts sharing a phone, e-mail or tax number, or a very similar
    name in one company; each with a link to the merge screen."""
    reason = request.args.get("reason", "phone")
    if reason not in REASONS:
        reason = "phone"
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    within = scoped(select(Partner.id), model=Partner)
    pairs, more = duplicate_pairs(reason, within=within, offset=(page - 1) * PAGE_SIZE,
                                  limit=PAGE_SIZE)
    return render_template("contacts/duplicates.html", pairs=pairs, more=more, page=page,
                           reason=reason, reasons=REASONS, counts=count_pairs(within),
                           card_url=card_url)
