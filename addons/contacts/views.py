"""Web pages of the contacts addon: the list, the card and the create/edit form.

Other modules of the addon add their routes to `bp` (`from .views import bp`) and are imported
at the bottom of this file. Every record is read through `core.security` (`scoped`,
`get_or_404`), so a contact outside the user's record rules is a 404 on every page here.

Template hooks this addon offers (other addons contribute with `addon.hook(name, template)`):
- `contacts.card.main` (partner): panels in the card's main column, under the details;
- `contacts.card.sidebar` (partner): panels in the card's side column;
- `contacts.card.counters` (partner): extra counters beside "meetings held" and "last
  contact", e.g. open deals; render one `<div class="counter">` each.
"""
from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import get_locale, ngettext
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import func, literal, null, or_, select, union_all
from werkzeug.datastructures import MultiDict

from core.api import (
    User,
    db,
    get_or_404,
    permission_required,
    read,
    scoped,
    shared_cache,
    visible,
)
from core.forms import ActionForm
from core.locking import save_or_conflict

from . import custom_fields as cf
from . import listing, picker, services, usage
from .duplicates import find_duplicates
from .forms import (
    EMAIL_KINDS,
    PHONE_KINDS,
    BulkForm,
    PartnerFormBase,
    SavedFilterForm,
    owner_choices,
    partner_form,
)
from .models import (
    KINDS,
    SEGMENTS,
    STATUSES,
    CustomField,
    Partner,
    PartnerTag,
    SavedFilter,
    Tag,
)
from .rows import list_rows, pager, status_labels
from .segment_models import Segment
from .segments import add_members

bp = Blueprint("contacts", __name__, static_folder="static")

MODEL = "contacts.partner"


def _helpers() -> dict[str, Any]:
    """Functions the templates use to show values."""
    from core.api import country_name

    # Lazy labels resolved once: each print of a lazy string runs the whole gettext chain.
    return {"display_phone": services.display_phone,
            "status_labels": status_labels(),
            "phone_kinds": dict(PHONE_KINDS), "email_kinds": dict(EMAIL_KINDS),
            "country_name": country_name, "field_label": cf.field_label,
            "custom_display": cf.display}


# -- the list ------------------------------------------------------------------------------
class ListOption(NamedTuple):
    id: int
    name: str
    kind: str | None  # a named segment's kind ("static", "dynamic")


@shared_cache(SavedFilter, Tag, Segment)
def _list_options(user_id: int) -> tuple[tuple[ListOption, ...], tuple[ListOption, ...],
                                         tuple[ListOption, ...]]:
    """The user's saved filters, the tags and the named segments, by name, read with ONE
    query (three small queries cost three statements' overhead, and round trips on
    PostgreSQL) and then kept by the worker until one of them changes (`core.cache`)."""
    lists = union_all(
        select(literal(0).label("list"), SavedFilter.id, SavedFilter.name,
               null().label("kind")).where(SavedFilter.user_id == user_id),
        select(literal(1), Tag.id, Tag.name, null()),
        select(literal(2), Segment.id, Segment.name, Segment.kind),
    ).order_by("list", "name", "id")
    found: tuple[list[ListOption], ...] = ([], [], [])
    for which, ident, name, kind in read(lists):
        found[which].append(ListOption(ident, name, kind))
    return tuple(found[0]), tuple(found[1]), tuple(found[2])


class ListFragments(NamedTuple):
    """Parts of the list page that show the same markup to every user with the same rights
    for the same language, list and filters (`contacts/_list_<name>.html`)."""

    actions: Markup  # new, import and export buttons (the export links carry the filters)
    filters: Markup  # the search box and the filter panel
    sorts: Markup  # the sort links
    bulk_bar: Markup  # what to do with the ticked rows
    thead: Markup  # the table's column titles


class ListRights(NamedTuple):
    write: bool
    manage: bool
    import_: bool
    export: bool


def _fragments_key(params: listing.ListParams, list_kind: str | None, list_url: str,
                   locale: str, rights: ListRights, **_lists: Any) -> tuple[Any, ...]:
    filters = tuple((k, tuple(v) if isinstance(v, list) else v)
                    for k, v in sorted(params.filters().items()))
    return (locale, list_kind, list_url, params.sort, params.per_page, filters, rights)


@shared_cache(User, Tag, Segment, CustomField, key=_fragments_key, maxsize=512)
def _list_fragments(params: listing.ListParams, list_kind: str | None, list_url: str,
                    locale: str, rights: ListRights, **lists: Any) -> ListFragments:
    """The list page's parts that depend on no user, row or page number, rendered once per
    worker for a language, list URL, filters, sort and set of rights until users, tags,
    segments or custom fields change (`core.cache`): they were half of the list's template.
    `lists`: the options they offer (fields, list fields, owners, tags, named segments), read
    from the same caches."""
    named = lists["named_segments"]
    # Static segments take ticked rows (managers); dynamic ones only filter.
    fillable = [(s.id, s.name) for s in named if s.kind == "static"] if rights.manage else []
    env = current_app.jinja_env
    values = {"params": params, "list_kind": list_kind, "list_url": list_url,
              "statuses": STATUSES, "segments": SEGMENTS, "sorts": listing.SORTS,
              "can_write": rights.write, "can_import": rights.import_,
              "can_export": rights.export, "fillable_segments": fillable,
              "bulk_actions": [(value, str(label)) for value, label
                               in BulkForm.action.kwargs["choices"]
                               if value != "segment" or fillable],
              **lists, **_helpers()}
    # The templates autoescape: their output is markup.
    return ListFragments(*(Markup(env.get_template(f"contacts/_list_{name}.html")  # noqa: S704
                                  .render(values)) for name in ListFragments._fields))


def _list_page(kind: str | None = None):
    fields = cf.active_fields()
    args = request.args.copy()
    if kind and not args.get("kind"):
        args["kind"] = kind
    params = listing.ListParams.parse(args, fields)
    list_fields = [f for f in fields if f.show_in_list]
    owners = owner_choices()[1:]
    page = listing.fetch(params, fields, list_fields, current_user, dict(owners))
    rows = list_rows(page, list_fields)
    saved, tags, named = _list_options(current_user.id)
    list_url = url_for(request.endpoint)
    has = current_user.has_permission
    rights = ListRights(has("contacts.write"), has("contacts.manage"), has("contacts.import"),
                        has("contacts.export"))
    fragments = _list_fragments(params, kind, list_url, str(get_locale() or "en"), rights,
                                fields=fields, list_fields=list_fields, owners=owners,
                                tags=tags, named_segments=named)
    return render_template(
        "contacts/list.html", page=page, rows=rows, params=params, fragments=fragments,
        list_url=list_url, saved=saved, list_kind=kind, pager=pager(page, list_url))


@bp.route("/")
@permission_required("contacts.read")
def index():
    return _list_page()


@bp.route("/people")
@permission_required("contacts.read")
def people():
    return _list_page("person")


@bp.route("/companies")
@permission_required("contacts.read")
def companies():
    return _list_page("company")


@bp.route("/companies.json")
@permission_required("contacts.read")
def company_lookup():
    """Companies whose name starts like `q` (the form's company field suggests them)."""
    return jsonify([{"id": p.id, "name": p.name}
                    for p in picker.suggest((request.args.get("q") or "")[:100], "company")])


@bp.route("/lookup.json")
@permission_required("contacts.read")
def lookup():
    """Suggestions for other addons' client fields (`picker`): visible people, companies or
    both (`kind` absent) whose name starts like `q`, with the city to tell namesakes apart."""
    kind = request.args.get("kind") or None
    rows = picker.suggest((request.args.get("q") or "")[:100], kind)
    return jsonify([{"id": p.id, "name": p.name, "city": p.city or ""} for p in rows])


# -- saved filters -------------------------------------------------------------------------
@bp.route("/filters", methods=["POST"])
@permission_required("contacts.read")
def save_filter():
    form = SavedFilterForm()
    back = request.referrer or url_for("contacts.index")
    if not form.validate_on_submit():
        flash(_("Give the filter a name."), "error")
        return redirect(back)
    fields = cf.active_fields()
    params = listing.ListParams.parse(_query_args(form.query.data or ""), fields)
    db.session.add(SavedFilter(user_id=current_user.id, name=form.name.data.strip(),
                               query=params.filters()))
    db.session.commit()
    flash(_("Filter saved."), "success")
    return redirect(url_for("contacts.index", **params.filters()))


def _query_args(query: str) -> MultiDict:
    return MultiDict(parse_qsl(query.lstrip("?"), keep_blank_values=False))


@bp.route("/filters/<int:filter_id>")
@permission_required("contacts.read")
def open_filter(filter_id: int):
    saved = db.session.get(SavedFilter, filter_id)
    if saved is None or saved.user_id != current_user.id:
        abort(404)
    return redirect(url_for("contacts.index", **(saved.query or {})))


@bp.route("/filters/<int:filter_id>/delete", methods=["POST"])
@permission_required("contacts.read")
def delete_filter(filter_id: int):
    saved = db.session.get(SavedFilter, filter_id)
    if saved is None or saved.user_id != current_user.id:
        abort(404)
    if not ActionForm().validate_on_submit():  # the CSRF token
        abort(400)
    db.session.delete(saved)
    db.session.commit()
    flash(_("Filter deleted."), "success")
    return redirect(request.referrer or url_for("contacts.index"))


# -- bulk actions --------------------------------------------------------------------------
def _ticked() -> list[int]:
    ids = []
    for raw in request.form.getlist("ids"):
        try:
            ids.append(int(raw))
        except ValueError:
            continue
    return ids


def _safe_next(target: str | None) -> str:
    """Only a path on this site (no `//host` or `/\\host` a browser would follow away)."""
    if target and target.startswith("/") and not target.startswith("//") \
            and "\\" not in target:
        return target
    return url_for("contacts.index")


@bp.route("/bulk", methods=["POST"])
@permission_required("contacts.write")
def bulk():
    form = BulkForm()
    form.owner_id.choices = owner_choices()
    back = _safe_next(form.next.data)
    if not form.validate_on_submit():
        abort(400)
    partners = listing.selected(_ticked(), current_user)
    if not partners:
        flash(_("Tick the contacts to change first."), "error")
        return redirect(back)
    action = form.action.data
    if action == "merge":  # duplicates found in the list: the merge page takes them
        from .merge_views import MAX_MERGE

        if not 2 <= len(partners) <= MAX_MERGE:
            flash(_("Tick between 2 and %(max)d contacts to merge.", max=MAX_MERGE), "error")
            return redirect(back)
        return redirect(url_for("contacts.merge", ids=[p.id for p in partners]))
    if action == "delete":
        if not current_user.has_permission("contacts.delete"):
            abort(404)
        return render_template("contacts/delete_confirm.html", partners=partners,
                               form=BulkForm(formdata=None, action="delete", next=back))
    if action == "segment":
        return _add_to_segment(form.segment_id.data, partners, back)
    if action == "owner":
        owner_id = form.owner_id.data
        if owner_id is not None and db.session.get(User, owner_id) is None:
            abort(400)
        for partner in partners:
            partner.owner_id = owner_id
    elif action == "status":
        if form.status.data not in STATUSES:
            abort(400)
        for partner in partners:
            partner.status = form.status.data
    elif action == "tag":
        name = (form.tag.data or "").strip()
        if not name:
            flash(_("Write the tag to add."), "error")
            return redirect(back)
        tag = _tag(name)
        have = set(db.session.scalars(select(PartnerTag.partner_id).where(
            PartnerTag.tag_id == tag.id, PartnerTag.partner_id.in_([p.id for p in partners]))))
        for partner in partners:
            if partner.id not in have:
                db.session.add(PartnerTag(partner_id=partner.id, tag_id=tag.id))
    db.session.commit()
    flash(ngettext("%(num)d contact changed.", "%(num)d contacts changed.", len(partners)),
          "success")
    return redirect(back)


@bp.route("/bulk/delete", methods=["POST"])
@permission_required("contacts.delete")
def bulk_delete():
    form = BulkForm()
    form.owner_id.choices = owner_choices()
    if not form.validate_on_submit() or form.action.data != "delete":
        abort(400)
    partners = listing.selected(_ticked(), current_user)
    # Offers and the like refuse their client's delete: keep those contacts, say so.
    kept = usage.partners_in_use([p.id for p in partners], blocking_only=True)
    deleted = [p for p in partners if p.id not in kept]
    for partner in deleted:
        db.session.delete(partner)
    db.session.commit()
    if deleted or not kept:
        flash(ngettext("%(num)d contact deleted.", "%(num)d contacts deleted.", len(deleted)),
              "success")
    if kept:
        flash(ngettext("%(num)d contact is used by other records (such as offers) and was "
                       "kept.", "%(num)d contacts are used by other records (such as offers) "
                       "and were kept.", len(kept)), "error")
    return redirect(_safe_next(form.next.data))


@bp.route("/<int:partner_id>/delete")
@permission_required("contacts.delete")
def delete_confirm(partner_id: int):
    """The card's "Delete": the list's confirmation page for this one contact, or, when
    offers and the like point at it, why it cannot be deleted (before the user confirms)."""
    partner = get_or_404(Partner, partner_id)
    in_use = bool(usage.partners_in_use([partner.id], blocking_only=True))
    back = url_for("contacts.companies" if partner.is_company else "contacts.people")
    return render_template("contacts/delete_confirm.html", partners=[partner], in_use=in_use,
                           form=BulkForm(formdata=None, action="delete", next=back))


def _add_to_segment(segment_id: int | None, partners: list[Partner], back: str):
    """Ticked rows into a static segment (segments are the managers' to fill)."""
    if not current_user.has_permission("contacts.manage"):
        abort(404)
    segment = db.session.get(Segment, segment_id) if segment_id else None
    if segment is None or segment.kind != "static":
        flash(_("Choose a segment whose members are picked by hand."), "error")
        return redirect(back)
    added = add_members(segment, [p.id for p in partners])
    db.session.commit()
    flash(ngettext("%(num)d contact added to %(name)s.", "%(num)d contacts added to %(name)s.",
                   added, name=segment.name), "success")
    return redirect(back)


def _tag(name: str) -> Tag:
    tag = db.session.scalar(select(Tag).where(func.lower(Tag.name) == name.lower()))
    if tag is None:
        tag = db.session.scalar(select(Tag).where(Tag.name == name))
    if tag is None:
        tag = Tag(name=name)
        db.session.add(tag)
        db.session.flush()
    return tag


# -- the card ------------------------------------------------------------------------------
def _counters(partner: Partner) -> dict[str, Any]:
    """Meetings held (done meeting activities) and the last contact; a company counts its
    people's too, since meetings with a company's staff are meetings with the client."""
    from core.activities import Activity, ActivityType

    ids = select(Partner.id).where(or_(Partner.id == partner.id,
                                       Partner.company_id == partner.id)) \
        if partner.is_company else select(Partner.id).where(Partner.id == partner.id)
    meetings = db.session.scalar(
        select(func.count(Activity.id)).join(ActivityType, ActivityType.id == Activity.type_id)
        .where(Activity.model == MODEL, Activity.record_id.in_(ids),
               Activity.done_at.is_not(None), ActivityType.code == "meeting")) or 0
    last = db.session.scalar(select(func.max(Partner.last_contact_at)).where(
        Partner.id.in_(ids))) if partner.is_company else partner.last_contact_at
    return {"meetings": meetings, "last_contact": last}


@bp.route("/<int:partner_id>")
@permission_required("contacts.read")
def card(partner_id: int):
    partner = get_or_404(Partner, partner_id)
    company = None
    if partner.company_id is not None:
        company = db.session.scalar(scoped(select(Partner).where(
            Partner.id == partner.company_id)))
    people = []
    if partner.is_company:
        lang = listing.sort_language()
        people = db.session.scalars(visible(Partner).where(
            Partner.company_id == partner.id, Partner.active.is_(True))
            .order_by(getattr(Partner, f"sort_{lang}"), Partner.id).limit(200)).all()
    fields = cf.active_fields(partner.kind)
    values = cf.values_for([partner.id], fields).get(partner.id, {})
    owner = db.session.get(User, partner.owner_id) if partner.owner_id else None
    return render_template(
        "contacts/card.html", partner=partner, company=company, people=people,
        fields=fields, values=values, owner=owner, counters=_counters(partner),
        model=MODEL, **_helpers())


# -- create and edit -----------------------------------------------------------------------
def _resolve_company(form: PartnerFormBase,
                     partner: Partner | None = None) -> tuple[bool, int | None]:
    """The company the form names (a visible company whose name matches), or an error.

    An unchanged name keeps the current link, even to a company the editor may not see.
    """
    from .folding import fold

    name = (form.company.data or "").strip()
    if form.kind.data == "company" or not name:
        return True, None
    if partner is not None and partner.company_id is not None \
            and fold(name) == fold(partner.company_name):
        return True, partner.company_id

    wanted = fold(name)
    matches = [p for p in db.session.scalars(services.visible_like(name, "company").limit(50))
               if fold(p.name) == wanted]
    if len(matches) == 1:
        return True, matches[0].id
    form.company.errors = list(form.company.errors) + [
        _("No company is called that; create the company first.") if not matches else
        _("Several companies are called that; open the right one and add the person there.")]
    return False, None


def _columns(form: PartnerFormBase, company_id: int | None) -> dict[str, Any]:
    """The Partner columns the form sets, as `save_or_conflict` takes them."""
    person = form.kind.data != "company"

    def text(value: str | None) -> str | None:
        return (value or "").strip() or None

    values: dict[str, Any] = {
        "kind": "person" if person else "company",
        "first_name": text(form.first_name.data) if person else None,
        "middle_name": text(form.middle_name.data) if person else None,
        "last_name": text(form.last_name.data) if person else None,
        "company_id": company_id if person else None,
        "job_title": text(form.job_title.data) if person else None,
        "website": text(form.website.data), "street": text(form.street.data),
        "city": text(form.city.data), "postcode": text(form.postcode.data),
        "region": text(form.region.data), "country": text(form.country.data),
        "lang": text(form.lang.data),
        "birthday": form.birthday.data if person else None,
        "vat": form.vat.data or None, "registration_no": form.registration_no.data or None,
        "status": form.status.data, "source": text(form.source.data),
        "owner_id": form.owner_id.data,
    }
    if person:
        values["name"] = services.person_name(values["first_name"], values["last_name"],
                                              values["middle_name"])
    else:
        values["name"] = form.name.data.strip()
    return values


def _form_tags(form: PartnerFormBase) -> list[Tag]:
    """The chosen tags and the new ones typed (created now: call before touching the partner,
    since creating a tag flushes)."""
    tag_ids = set(form.tags.data or [])
    tags = list(db.session.scalars(select(Tag).where(Tag.id.in_(tag_ids)))) if tag_ids else []
    for name in form.new_tag_names():
        tag = _tag(name)
        if tag not in tags:
            tags.append(tag)
    return tags


def _apply_related(partner: Partner, form: PartnerFormBase, tags: list[Tag]) -> None:
    """Phones, e-mails and tags (not columns, so not part of the version check's changes)."""
    services.set_phones(partner, form.phone_list())
    services.set_emails(partner, form.email_list())
    partner.tags = tags


def _custom_values(form: PartnerFormBase) -> dict[int, Any]:
    return {field.id: cf.form_value(field, getattr(form, attr).data)
            for field, attr in form.custom}


def _render_form(form: PartnerFormBase, partner: Partner | None, **extra: Any):
    return render_template("contacts/form.html", form=form, partner=partner,
                           kind=form.kind.data, **extra)


@bp.route("/new/<kind>", methods=["GET", "POST"])
@permission_required("contacts.write")
def new(kind: str):
    if kind not in KINDS:
        abort(404)
    fields = cf.active_fields(kind)
    form = partner_form(fields)
    if request.method == "GET":
        form.kind.data = kind
        form.owner_id.data = current_user.id
        company_id = request.args.get("company_id", type=int)
        if company_id:
            company = get_or_404(Partner, company_id)
            form.company.data = company.name
    if form.validate_on_submit():
        ok, company_id = _resolve_company(form)
        if ok:
            values = _columns(form, company_id)
            matches = [] if form.create_anyway.data else find_duplicates(
                phones=[p for p, _k in form.phone_list()],
                emails=[e for e, _k in form.email_list()], vat=values["vat"],
                name=values["name"], company_id=company_id, country=values.get("country"))
            if matches:
                return _render_form(form, None, duplicates=matches)
            # Nobody chosen: the creator is responsible (and, under "own" rules, still sees it).
            values["owner_id"] = values["owner_id"] or current_user.id
            tags = _form_tags(form)
            partner = Partner(created_by_id=current_user.id, **values)
            db.session.add(partner)
            _apply_related(partner, form, tags)
            db.session.flush()
            cf.save_values(partner, _custom_values(form), fields)
            services.refresh_search(partner)
            db.session.commit()
            flash(_("%(name)s created.", name=partner.name), "success")
            return redirect(url_for("contacts.card", partner_id=partner.id))
    return _render_form(form, None)


@bp.route("/<int:partner_id>/edit", methods=["GET", "POST"])
@permission_required("contacts.write")
def edit(partner_id: int):
    partner = get_or_404(Partner, partner_id)
    fields = cf.active_fields(partner.kind)
    if request.method == "GET":
        form = partner_form(fields, data=_initial(partner, fields))
    else:
        form = partner_form(fields)
        form.kind.data = partner.kind
    if form.validate_on_submit():
        ok, company_id = _resolve_company(form, partner)
        old_name = partner.name
        if ok:
            values = _columns(form, company_id)
            tags = _form_tags(form)
            # One UPDATE, checked against the version the form was rendered with: nothing
            # may flush the partner before `save_or_conflict` does.
            with db.session.no_autoflush:
                if str(partner.version) == str(form.version.data):
                    _apply_related(partner, form, tags)
                conflict = save_or_conflict(partner, form.version.data or 0, values)
            if conflict is not None:
                db.session.rollback()
                current = db.session.get(Partner, partner_id)
                if current is None:
                    abort(404)
                form.version.data = str(current.version)
                return _render_form(form, current, conflict=conflict)
            cf.save_values(partner, _custom_values(form), fields)
            services.refresh_search(partner)
            if partner.kind == "company" and partner.name != old_name:
                services.refresh_people_of(partner)
            db.session.commit()
            flash(_("%(name)s saved.", name=partner.name), "success")
            return redirect(url_for("contacts.card", partner_id=partner.id))
    return _render_form(form, partner)


def _initial(partner: Partner, fields: list) -> dict[str, Any]:
    values = cf.values_for([partner.id], fields).get(partner.id, {})
    data: dict[str, Any] = {name: getattr(partner, name) or "" for name in (
        "name", "first_name", "middle_name", "last_name", "job_title", "website", "street",
        "city", "postcode", "region", "vat", "registration_no", "source")}
    data.update({
        "version": str(partner.version), "kind": partner.kind, "status": partner.status,
        "birthday": partner.birthday,
        "company": partner.company_name or "",
        "phones": [{"number": services.display_phone(p.number), "kind": p.kind}
                   for p in partner.phones],
        "emails": [{"email": e.email, "kind": e.kind} for e in partner.emails],
        "tags": [t.id for t in partner.tags], "country": partner.country or "",
        "lang": partner.lang or "", "owner_id": partner.owner_id,
    })
    for field in fields:
        data[f"cf{field.id}"] = cf.initial_value(field, values.get(field.id))
    return data


cf.register_views(bp)

from . import merge_views  # noqa: E402,F401,I001
from . import segment_views  # noqa: E402,F401,I001
from . import import_views  # noqa: E402,F401,I001
from . import export  # noqa: E402,F401,I001
