"""Every route of the kernel and the built-in addons, walked as every default role and as an
anonymous visitor.

Why: a view that forgets `get_or_404`, `permission_required` or the CSRF check is one line
among hundreds; a walk over `app.url_map` catches it whoever wrote the route. The tables
below say, per route, which record fills each `<int:...>` argument and who may open it;
a route the tables do not know fails the walk, so a new route must be classified here.

One app and one set of records serve every check (the `make_app` fixture is per test), and
a failure lists every route, method, actor and status that broke the rules at once.
"""
from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.routing import IntegerConverter, Rule

from core.api import db
from core.testing import TEST_PASSWORD, csrf_token

ADDONS = ["contacts", "pipeline", "documents"]

#: Planted in every record user A owns: a page that shows it to an outsider leaks it.
MARK = "QX7SECRET"
PDF = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n"

# -- who walks -------------------------------------------------------------------------------
#: Actor -> default role. `alice` owns every record; `bob` is a salesperson like her; `mona`
#: manages a team alice is not in (her "team" scope does not reach alice's records); `root`
#: is the superuser (`User.is_admin`); `adm` holds the administrator role (every permission,
#: "all" scope), which every check treats the same as the superuser.
ROLES = {"alice": "salesperson", "bob": "salesperson", "mona": "sales_manager",
         "sue": "support_agent", "aud": "auditor", "adm": "administrator", "root": None}
ACTORS = tuple(ROLES)
OUTSIDERS = ("bob", "mona")  # may not see alice's records at all
#: Who opens every page without a record argument (the rest differ from one of these only
#: by the record rules, which the record routes walk).
SWEEPERS = ("bob", "mona", "aud", "root")

#: Who may open a route, by what guards it.
OWN_READ = frozenset({"alice", "sue", "aud", "adm", "root"})  # record rules + <addon>.read
OWN_WRITE = frozenset({"alice", "adm", "root"})               # record rules + <addon>.write
ANNOTATORS = OWN_WRITE | {"sue"}                    # ... or records.annotate
MANAGE = frozenset({"mona", "adm", "root"})                   # <addon>.manage
ADMIN = frozenset({"adm", "root"})                  # core.admin, documents.template_edit
EVERY_READER = frozenset(ACTORS)                    # shared settings read by everyone
NOBODY: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Route:
    """How to fill a record route and who may GET / POST it.

    `args` maps each URL argument to a key of the walk's `ids` (or a literal for non-id
    arguments); `get` and `post` are the actors let through, everyone else must get a 404
    (or 403) and change nothing. `query` is added to the URL; `data` to a POST's form.
    """

    args: dict[str, str]
    get: frozenset[str] = NOBODY
    post: frozenset[str] = NOBODY
    query: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)


def r(args: dict[str, str], get: frozenset[str] = NOBODY, post: frozenset[str] = NOBODY,
      **kw: Any) -> Route:
    """A `Route`, short enough for one table row."""
    return Route(args, get, post, **kw)


PARTNER = {"partner_id": "partner"}
DEAL = {"deal_id": "deal"}
OFFER = {"offer_id": "offer"}
LEAD = {"lead_id": "lead"}
ACTIVITY = {"activity_id": "activity"}
FILE = {"attachment_id": "attachment"}
PIPELINE = {"pipeline_id": "pipeline"}
TEMPLATE = {"template_id": "template"}

#: Every rule with an `<int:...>` argument, by its rule string. `$name` in a literal is
#: replaced by the id `name` (form fields that name a record).
RECORD_ROUTES: dict[str, Route] = {
    # -- kernel: activities, attachments, timeline, API tokens -------------------------------
    # Only its owner revokes a token (alice's, here).
    "/account/api-tokens/<int:token_id>/revoke": r({"token_id": "api_token"},
                                                   post=frozenset({"alice"})),
    "/activities/<int:activity_id>": r(ACTIVITY, OWN_READ),
    # Its assignee or creator (alice), their manager, an administrator; readers get a 403.
    "/activities/<int:activity_id>/done": r(ACTIVITY, post=frozenset({"alice", "adm", "root"})),
    "/activities/<int:activity_id>/reassign": r(ACTIVITY, post=ADMIN,
                                                data={"assignee_id": "$bob"}),
    "/attachments/<int:attachment_id>": r(FILE, OWN_READ),
    # Its uploader (alice) or an administrator; other readers get a 403.
    "/attachments/<int:attachment_id>/delete": r(FILE, post=frozenset({"alice", "adm", "root"})),
    # `<model>` is filled by each record model in turn (see MODEL_ROUTES). Readers who may
    # edit the record's addon, or hold `records.annotate` (support agents), add notes and
    # files; the auditor only reads (403).
    "/records/<model>/<int:record_id>/attachments": r({}, post=ANNOTATORS),
    "/records/<model>/<int:record_id>/notes": r({}, post=ANNOTATORS,
                                                data={"body": "note", "kind": "note"}),
    "/records/<model>/<int:record_id>/timeline": r({}, OWN_READ),
    # -- kernel: access administration ------------------------------------------------------
    "/admin/access/roles/<int:role_id>": r({"role_id": "role"}, ADMIN, ADMIN),
    "/admin/access/roles/<int:role_id>/delete": r({"role_id": "role"}, post=ADMIN),
    "/admin/access/teams/<int:team_id>": r({"team_id": "team"}, ADMIN, ADMIN),
    "/admin/access/teams/<int:team_id>/delete": r({"team_id": "team"}, post=ADMIN),
    "/admin/access/users/<int:user_id>": r({"user_id": "alice"}, ADMIN, ADMIN),
    "/admin/access/users/<int:user_id>/activate": r({"user_id": "alice"}, post=ADMIN),
    "/admin/access/users/<int:user_id>/deactivate": r({"user_id": "alice"}, post=ADMIN),
    "/admin/access/users/<int:user_id>/reset": r({"user_id": "alice"}, post=ADMIN),
    # -- contacts ---------------------------------------------------------------------------
    "/contacts/<int:partner_id>": r(PARTNER, OWN_READ),
    "/contacts/<int:partner_id>/edit": r(PARTNER, OWN_WRITE, OWN_WRITE),
    "/contacts/<int:partner_id>/delete": r(PARTNER, ADMIN),  # contacts.delete + rules
    # A saved filter is its user's alone, whatever the roles.
    "/contacts/filters/<int:filter_id>": r({"filter_id": "filter"}, frozenset({"alice"})),
    "/contacts/filters/<int:filter_id>/delete": r({"filter_id": "filter"},
                                                  post=frozenset({"alice"})),
    # alice's batch: its uploader with contacts.import (she has not) or an administrator.
    "/contacts/import/<int:batch_id>": r({"batch_id": "batch"}, ADMIN, ADMIN),
    "/contacts/import/<int:batch_id>/rejected.csv": r({"batch_id": "batch"}, ADMIN),
    "/contacts/import/<int:batch_id>/revert": r({"batch_id": "batch"}, post=ADMIN),
    # A segment is shared; the partners listed on its page follow the record rules.
    "/contacts/segments/<int:segment_id>": r({"segment_id": "segment"}, EVERY_READER),
    "/contacts/segments/<int:segment_id>/delete": r({"segment_id": "segment"}, post=MANAGE),
    "/contacts/segments/<int:segment_id>/members": r({"segment_id": "segment"}, post=MANAGE,
                                                     data={"add": "$partner"}),
    "/contacts/settings/fields/<int:field_id>": r({"field_id": "custom_field"}, MANAGE,
                                                  MANAGE),
    # -- documents --------------------------------------------------------------------------
    "/documents/files/<int:attachment_id>/download": r(FILE, OWN_READ),
    "/documents/files/<int:attachment_id>/inline": r(FILE, OWN_READ),
    "/documents/files/<int:attachment_id>/preview": r(FILE, OWN_READ),
    "/documents/files/client/<int:partner_id>": r(PARTNER, OWN_READ),
    "/documents/files/client/<int:partner_id>/upload": r(PARTNER, post=OWN_WRITE),
    "/documents/offers/<int:offer_id>": r(OFFER, OWN_READ),
    # alice's offer is sent: her POST is refused with a message (only a draft is deleted).
    "/documents/offers/<int:offer_id>/delete": r(OFFER, post=OWN_WRITE),
    "/documents/offers/<int:offer_id>/edit": r(OFFER, OWN_WRITE, OWN_WRITE),
    "/documents/offers/<int:offer_id>/lines": r(OFFER, post=OWN_WRITE),
    "/documents/offers/<int:offer_id>/lines/<int:line_id>/delete": r(
        {**OFFER, "line_id": "line"}, post=OWN_WRITE),
    "/documents/offers/<int:offer_id>/lines/<int:line_id>/edit": r(
        {**OFFER, "line_id": "line"}, OWN_WRITE, OWN_WRITE),
    "/documents/offers/<int:offer_id>/lines/<int:line_id>/price": r(
        {**OFFER, "line_id": "line"}, post=OWN_WRITE),
    "/documents/offers/<int:offer_id>/offer.pdf": r(OFFER, OWN_READ),
    "/documents/offers/<int:offer_id>/preview": r(OFFER, OWN_READ),
    "/documents/offers/<int:offer_id>/public-link": r(OFFER, post=OWN_WRITE),
    "/documents/offers/<int:offer_id>/public-link/revoke": r(OFFER, post=OWN_WRITE),
    "/documents/offers/<int:offer_id>/revise": r(OFFER, post=OWN_WRITE),
    "/documents/offers/<int:offer_id>/send": r(OFFER, OWN_WRITE, OWN_WRITE),
    "/documents/offers/<int:offer_id>/sent.pdf": r(OFFER, OWN_READ),
    "/documents/offers/<int:offer_id>/state/<state>": r({**OFFER, "state": "=accepted"},
                                                        post=OWN_WRITE),
    # The catalogue is read by everyone with documents.read; only managers change it.
    "/documents/products/<int:product_id>": r({"product_id": "product"}, EVERY_READER, MANAGE),
    "/documents/products/<int:product_id>/prices": r({"product_id": "product"}, post=MANAGE),
    "/documents/templates/<int:template_id>": r(TEMPLATE, ADMIN, ADMIN),
    "/documents/templates/<int:template_id>/preview": r(TEMPLATE, ADMIN, ADMIN,
                                                        query={"record": "$partner"}),
    # Any reader may print, but only for a record they may see.
    "/documents/templates/<int:template_id>/print": r(TEMPLATE, OWN_READ,
                                                      query={"record": "$partner"}),
    "/documents/templates/<int:template_id>/revert/<int:number>": r(
        {**TEMPLATE, "number": "=1"}, post=ADMIN),
    # -- pipeline ---------------------------------------------------------------------------
    "/pipeline/api/deals/<int:deal_id>": r(DEAL, OWN_READ),
    "/pipeline/api/leads/<int:lead_id>": r(LEAD, OWN_READ),
    "/pipeline/api/deals/<int:deal_id>/move": r(DEAL, post=OWN_WRITE),
    "/pipeline/deals/<int:deal_id>": r(DEAL, OWN_READ, OWN_WRITE),
    "/pipeline/deals/<int:deal_id>/move": r(DEAL, post=OWN_WRITE),
    # The board is shared; moving a card names the deal in the form: alice's, here.
    "/pipeline/board/<int:pipeline_id>": r(PIPELINE, EVERY_READER),
    "/pipeline/board/<int:pipeline_id>/sums": r(PIPELINE, EVERY_READER),
    "/pipeline/board/<int:pipeline_id>/move": r(PIPELINE, post=OWN_WRITE, data={
        "move": "$deal:$deal_version", "stage_$deal": "$stage"}),
    # Quick create makes the poster's own deal: every writer may.
    "/pipeline/board/<int:pipeline_id>/quick": r(PIPELINE, post=frozenset(
        {"alice", "bob", "mona", "adm", "root"})),
    "/pipeline/leads/<int:lead_id>": r(LEAD, OWN_READ),
    "/pipeline/leads/<int:lead_id>/convert": r(LEAD, OWN_WRITE, OWN_WRITE),
    "/pipeline/leads/<int:lead_id>/dismiss": r(LEAD, post=OWN_WRITE),
    "/pipeline/leads/<int:lead_id>/take": r(LEAD, post=OWN_WRITE),
    "/pipeline/pipelines/<int:pipeline_id>/webform": r(PIPELINE, MANAGE, MANAGE),
    "/pipeline/settings/lost-reasons/<int:reason_id>": r({"reason_id": "reason"}, MANAGE,
                                                         MANAGE),
    "/pipeline/settings/pipelines/<int:pipeline_id>": r(PIPELINE, MANAGE, MANAGE),
    "/pipeline/settings/pipelines/<int:pipeline_id>/stages": r(PIPELINE, post=MANAGE),
    "/pipeline/settings/pipelines/<int:pipeline_id>/rules": r(PIPELINE, post=MANAGE),
    "/pipeline/settings/rules/<int:rule_id>/delete": r({"rule_id": "rule"}, post=MANAGE),
    "/pipeline/settings/stages/<int:stage_id>": r({"stage_id": "stage"}, MANAGE, MANAGE),
    "/pipeline/settings/stages/<int:stage_id>/delete": r({"stage_id": "stage"}, post=MANAGE),
    "/pipeline/settings/tags/<int:tag_id>": r({"tag_id": "tag"}, post=MANAGE),
    "/pipeline/settings/tags/<int:tag_id>/delete": r({"tag_id": "tag"}, post=MANAGE),
}

#: The record models the generic `/records/<model>/<id>/...` routes are walked with.
MODEL_ROUTES = {"contacts.partner": "partner", "pipeline.deal": "deal",
                "pipeline.lead": "lead", "documents.offer": "offer"}

#: Rules without an `<int:...>` argument: the values of their other arguments.
OTHER_ROUTES: dict[str, dict[str, str]] = {
    "/": {}, "/account/api-tokens/": {}, "/activities/": {}, "/activities/calendar": {},
    "/activities/feed": {},
    "/activities/feed/revoke": {}, "/activities/schedule": {}, "/activities/types": {},
    "/admin/access/roles": {}, "/admin/access/roles/new": {}, "/admin/access/teams": {},
    "/admin/access/teams/new": {}, "/admin/access/users": {}, "/admin/access/users/new": {},
    "/admin/addons": {}, "/admin/addons/<name>/disable": {"name": "=documents"},
    "/admin/addons/<name>/enable": {"name": "=documents"}, "/admin/audit/": {},
    "/admin/company": {},
    "/contacts/": {}, "/contacts/bulk": {}, "/contacts/bulk/delete": {},
    "/contacts/companies": {}, "/contacts/companies.json": {}, "/contacts/duplicates": {},
    "/contacts/lookup.json": {},
    "/contacts/export.<fmt>": {"fmt": "=csv"}, "/contacts/filters": {},
    "/contacts/import": {}, "/contacts/merge": {}, "/contacts/new/<kind>": {"kind": "=person"},
    "/contacts/people": {}, "/contacts/segments": {}, "/contacts/segments/abc/<letter>":
    {"letter": "=A"}, "/contacts/segments/new": {}, "/contacts/segments/recompute": {},
    "/contacts/segments/settings": {}, "/contacts/settings/fields": {},
    "/contacts/settings/fields/new": {}, "/documents/files": {}, "/documents/offers": {},
    "/documents/offers/new": {}, "/documents/products": {}, "/documents/products/import": {},
    "/documents/products/new": {}, "/documents/templates": {}, "/documents/templates/new": {},
    "/locale": {}, "/logout": {}, "/pipeline/": {}, "/pipeline/calls/import": {},
    "/pipeline/import": {}, "/pipeline/api/leads": {},
    "/pipeline/calls/report": {}, "/pipeline/deals": {}, "/pipeline/deals.csv": {},
    "/pipeline/deals/new": {}, "/pipeline/leads": {}, "/pipeline/leads/new": {},
    "/pipeline/reports/": {}, "/pipeline/reports/<name>": {"name": "=funnel"},
    "/pipeline/settings/lost-reasons": {}, "/pipeline/settings/pipelines": {},
    "/pipeline/settings/tags": {},
    "/pipeline/settings/pipelines/new": {}, "/pipeline/workload": {},
    "/pipeline/workload/rotate": {}, "/pipeline/workload/capacity": {},
    # public (see PUBLIC)
    "/healthz": {}, "/favicon.ico": {}, "/login": {},
    "/account/password/<token>": {"token": "=not-a-token"},
    "/activities/ical/<token>.ics": {"token": "=not-a-token"},
    "/documents/p/<token>": {"token": "public_token"},
    "/documents/p/<token>/answer": {"token": "public_token"},
    "/documents/p/<token>/pdf": {"token": "public_token"},
    "/pipeline/form/<form_key>": {"form_key": "=walk-form"}, "/pipeline/pbx/calls": {},
    "/static/<path:filename>": {"filename": "=birga.css"},
    "/contacts/static/<path:filename>": {"filename": "static_contacts"},
    "/documents/static/<path:filename>": {"filename": "static_documents"},
    "/pipeline/static/<path:filename>": {"filename": "static_pipeline"},
}

#: Routes an anonymous visitor may use, each guarding itself (a signed token, a form key
#: and its allowed origins, the PBX token) or showing nothing private, with what they
#: answer the walk's anonymous requests.
PUBLIC: dict[str, dict[str, int]] = {
    "/healthz": {"GET": 200},
    "/favicon.ico": {"GET": 301},  # to the static icon
    "/login": {"GET": 200, "POST": 200},  # the walk's login is wrong: the form again
    "/locale": {"POST": 302},
    "/account/password/<token>": {"GET": 404, "POST": 404},  # a token that does not verify
    "/activities/ical/<token>.ics": {"GET": 404},  # likewise
    "/documents/p/<token>": {"GET": 200},  # alice's offer, by its signed link
    "/documents/p/<token>/answer": {"POST": 400},  # the walk sends no decision
    "/documents/p/<token>/pdf": {"GET": 200},
    "/pipeline/form/<form_key>": {"POST": 403},  # not from an allowed origin
    "/pipeline/pbx/calls": {"POST": 404},  # no PBX token configured: no such endpoint
    "/static/<path:filename>": {"GET": 200}, "/contacts/static/<path:filename>": {"GET": 200},
    "/documents/static/<path:filename>": {"GET": 200},
    "/pipeline/static/<path:filename>": {"GET": 200},
}
#: The views open to personal API tokens (`@token_api`); every other route must treat a
#: token as an anonymous visitor.
TOKEN_ROUTES = {"/pipeline/api/deals/<int:deal_id>", "/pipeline/api/deals/<int:deal_id>/move",
                "/pipeline/api/leads", "/pipeline/api/leads/<int:lead_id>"}
#: POST routes without a CSRF token by design: their callers have no session.
CSRF_EXEMPT = {"/pipeline/form/<form_key>", "/pipeline/pbx/calls"}

#: Sent with every state-changing POST an actor may not make: plausible fields of the
#: forms behind these routes, so a view that skipped its check would change something.
ATTACK = {"title": f"hacked {MARK}", "name": f"hacked {MARK}", "body": "hacked",
          "subject": "hacked", "kind": "note", "stage_id": "$stage",
          "version": "$deal_version", "description": "hacked", "unit_price": "1",
          "quantity": "1", "vat_rate": "21", "outcome": "hacked", "login": "hacked",
          "email": "hacked@example.test", "sequence": "10", "probability": "10",
          "currency": "EUR", "active": "y", "price": "1", "valid_from": "2026-01-01"}


# -- the records ---------------------------------------------------------------------------
def build_world(app: Flask, make_user: Any) -> dict[str, Any]:
    """Users for every default role and one record of every kind, owned by alice."""
    from addons.contacts.importing.uploads import create_batch
    from addons.contacts.models import CustomField, Partner, SavedFilter
    from addons.contacts.segment_models import Segment
    from addons.contacts.segments import add_members
    from addons.documents import offers as svc
    from addons.documents.default_templates import ensure_default
    from addons.documents.models import Product, ProductPrice
    from addons.documents.public import issue_link, make_token
    from addons.pipeline.leads import create_lead
    from addons.pipeline.models import AssignmentRule, LostReason, Tag
    from addons.pipeline.state import create_deal, seed_defaults
    from core.activities import activity_types, schedule_activity
    from core.api import save_attachment, seed_reference_data
    from core.api_tokens import issue_api_token
    from core.security import Role, Team, assign_roles, set_user_teams

    users = {}
    for login, role in ROLES.items():
        users[login] = make_user(login, is_admin=role is None)
        if role:
            assign_roles(users[login], role)
    alice, bob, mona = users["alice"], users["bob"], users["mona"]
    team = Team(name="Walk team", manager_id=mona.id)
    db.session.add(team)
    db.session.flush()
    set_user_teams(bob, [team.id])
    role = Role(code="walk_role", name="Walk role", default_scope="own")
    role.permissions = {"contacts.read"}
    db.session.add(role)
    seed_reference_data()
    pipeline = seed_defaults()
    pipeline.form_key = "walk-form"
    db.session.flush()
    stages = [s for s in pipeline.stages if s.kind == "open"]
    partner = Partner(kind="company", name=f"Walk Partner {MARK}", owner_id=alice.id,
                      email="client@example.test", lang="en", country="LV")
    db.session.add(partner)
    db.session.flush()
    deal = create_deal(title=f"Walk deal {MARK}", pipeline=pipeline, user=alice,
                       owner_id=alice.id, partner_id=partner.id, amount="1000")
    lead = create_lead(channel="manual", pipeline=pipeline, name=f"Walk lead {MARK}",
                       email="lead@example.test", owner=alice, author=alice)
    product = Product(sku="WALK-1", name="Walk product", names={}, descriptions={}, unit="pcs",
                      vat_category="standard", track_stock=False, active=True)
    db.session.add(product)
    db.session.flush()
    db.session.add(ProductPrice(product_id=product.id, currency="EUR", price=Decimal("10"),
                                valid_from=date(2020, 1, 1)))
    offer = svc.create_offer(partner, user=alice, offer_date=date(2026, 3, 2))
    line = svc.add_line(offer, product=product, quantity="2")
    svc.add_line(offer, description=f"Walk line {MARK}", unit_price="5", vat_rate="21")
    svc.change_state(offer, "sent", user=alice)
    sent = save_attachment("documents.offer", offer.id, io.BytesIO(PDF), "offer.pdf",
                           user=alice)
    db.session.flush()
    offer.sent_attachment_id = sent.id
    issue_link(offer, user=alice)
    attachment = save_attachment("contacts.partner", partner.id, io.BytesIO(PDF),
                                 f"walk-{MARK}.pdf", user=alice)
    kind = activity_types()[0]
    activity = schedule_activity(type_id=kind.id, summary=f"Walk activity {MARK}",
                                 due_at=datetime.now(UTC) + timedelta(days=1), assignee=alice,
                                 creator=alice, model="contacts.partner", record_id=partner.id)
    saved = SavedFilter(user_id=alice.id, name=f"Walk filter {MARK}", query={"q": "walk"})
    batch = create_batch(f"name\nWalk import {MARK}\n".encode(), f"walk-{MARK}.csv",
                         user_id=alice.id)
    segment = Segment(name="Walk segment", kind="static", created_by_id=mona.id)
    custom = CustomField(code="walk_field", labels={"en": "Walk field"}, kind="text")
    db.session.add_all([saved, segment, custom])
    db.session.flush()
    add_members(segment, [partner.id])
    template = ensure_default("contract")
    reason = db.session.scalar(sa.select(LostReason).order_by(LostReason.id))
    tag = Tag(name="Walk tag")  # reference data every reader sees: no secret mark
    rule = AssignmentRule(pipeline_id=pipeline.id, country="LV", team_id=team.id)
    db.session.add_all([tag, rule])
    alice_token, _secret = issue_api_token(alice, f"Walk token {MARK}")
    _root_token, root_secret = issue_api_token(users["root"], "Walk")
    db.session.commit()

    static = {}
    for addon in ("contacts", "documents", "pipeline"):
        folder = app.blueprints[addon].static_folder
        found = sorted(p for p in Path(folder).rglob("*") if p.is_file())
        static[f"static_{addon}"] = found[0].relative_to(folder).as_posix()
    ids = {
        "partner": partner.id, "deal": deal.id, "deal_version": deal.version,
        "lead": lead.id, "offer": offer.id, "line": line.id, "product": product.id,
        "activity": activity.id, "attachment": attachment.id, "filter": saved.id,
        "batch": batch.id, "segment": segment.id, "custom_field": custom.id,
        "template": template.id, "reason": reason.id, "pipeline": pipeline.id,
        "stage": stages[1].id, "role": role.id, "team": team.id, "tag": tag.id,
        "rule": rule.id, "api_token": alice_token.id,
        "public_token": make_token(offer), **static,
        **{login: user.id for login, user in users.items()},
    }
    return {"users": users, "ids": ids, "root_secret": root_secret}


# -- the walk ------------------------------------------------------------------------------
ARG = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
OK = {200, 302, 303}
DENIED_GET = {404}
DENIED_POST = {403, 404, 405}


def arg(value: str, ids: dict[str, Any]) -> str:
    """A URL argument: `=literal` or the name of an id."""
    return value[1:] if value.startswith("=") else str(ids[value])


def fill(value: str, ids: dict[str, Any]) -> str:
    """A form or query value: a text with `$name` placeholders for ids."""
    for name in sorted(ids, key=len, reverse=True):  # `$deal_version` before `$deal`
        value = value.replace(f"${name}", str(ids[name]))
    return value


@dataclass
class Case:
    """One address to walk: a rule with its arguments filled."""

    rule: Rule
    path: str
    route: Route | None  # None: a rule without record arguments


def table_problems(app: Flask) -> list[str]:
    """What keeps the tables from covering exactly the app's rules, each argument filled."""
    rules = {rule.rule: rule for rule in app.url_map.iter_rules()}
    problems = [f"{text}: unknown; add it to RECORD_ROUTES (an <int:...> argument) or "
                f"OTHER_ROUTES (and to PUBLIC if anonymous visitors may use it)"
                for text in sorted(set(rules) - set(RECORD_ROUTES) - set(OTHER_ROUTES))]
    problems += [f"{text}: in the tables, not in the app" for text in
                 sorted((set(RECORD_ROUTES) | set(OTHER_ROUTES) | set(PUBLIC)) - set(rules))]
    for text, rule in rules.items():
        has_int = any(isinstance(c, IntegerConverter) for c in rule._converters.values())
        if text in RECORD_ROUTES or text in OTHER_ROUTES:
            if has_int != (text in RECORD_ROUTES):
                problems.append(f"{text}: belongs in {'RECORD' if has_int else 'OTHER'}_ROUTES")
            args = set(RECORD_ROUTES[text].args if text in RECORD_ROUTES else OTHER_ROUTES[text])
            if "model" in rule.arguments:
                args |= {"model", "record_id"}
            if args != set(rule.arguments):
                problems.append(f"{text}: fills {sorted(args)}, not {sorted(rule.arguments)}")
        if text in PUBLIC and set(PUBLIC[text]) != {"GET", "POST"} & set(rule.methods or ()):
            problems.append(f"{text}: PUBLIC names {sorted(PUBLIC[text])}, not its methods")
    return problems


def cases(app: Flask, ids: dict[str, Any]) -> list[Case]:
    """Every rule of the app as the addresses to request."""
    assert not table_problems(app), table_problems(app)
    found = []
    for text, rule in sorted((r.rule, r) for r in app.url_map.iter_rules()):
        route = RECORD_ROUTES.get(text)
        args = route.args if route else OTHER_ROUTES[text]
        variants = [dict(args)]
        if "model" in rule.arguments:
            variants = [{**args, "model": f"={name}", "record_id": key}
                        for name, key in MODEL_ROUTES.items()]
        for values in variants:
            path = ARG.sub(lambda m, v=values: arg(v[m.group(1)], ids), text)
            if route and route.query:
                path += "?" + "&".join(f"{k}={fill(v, ids)}" for k, v in route.query.items())
            found.append(Case(rule, path, route))
    return found


class Walker:
    """Requests as each actor and collects what broke the rules."""

    def __init__(self, app: Flask, world: dict[str, Any]) -> None:
        from core.testing import expected_tables

        self.ids = world["ids"]
        self.failures: list[str] = []
        self.requests = 0
        self.clients: dict[str, Any] = {}
        self.tokens: dict[str, str] = {}
        self.tables = [db.metadata.tables[n] for n in sorted(expected_tables(app))]
        self.batch: list[tuple[str, str, Case, bool]] | None = None
        anonymous = app.test_client()
        self.clients["anonymous"] = anonymous
        self.tokens["anonymous"] = csrf_token(anonymous, "/login")
        for login, user in world["users"].items():
            client = app.test_client()
            response = client.post("/login", data={
                "login": user.login, "password": TEST_PASSWORD,
                "csrf_token": csrf_token(client, "/login")})
            assert response.status_code == 302, f"{login} could not sign in"
            self.clients[login] = client
            self.tokens[login] = csrf_token(client, "/")  # the menu's sign-out form
        program = app.test_client()  # a script with root's API token and no cookie
        program.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {world['root_secret']}"
        self.clients["token"] = program
        self.tokens["token"] = ""

    def fingerprint(self) -> dict[str, str]:
        """A digest of every table's rows: what a refused request must leave untouched."""
        digests = {}
        with db.engine.connect() as conn:
            for table in self.tables:
                rows = sorted(repr(tuple(row)) for row in conn.execute(sa.select(table)))
                digests[table.name] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
        return digests

    def request(self, actor: str, method: str, path: str, *, csrf: bool = True,
                data: dict[str, str] | None = None) -> tuple[Any, str]:
        """(response or None, status text); an exception counts as a 500."""
        client = self.clients[actor]
        self.requests += 1
        try:
            if method == "GET":
                response = client.get(path)
            else:
                form: dict[str, Any] = {k: fill(v, self.ids) for k, v in
                                        {**ATTACK, **(data or {})}.items()}
                if csrf:
                    form["csrf_token"] = self.tokens[actor]
                form["file"] = (io.BytesIO(b"hacked"), "hacked.txt")
                response = client.post(path, data=form, content_type="multipart/form-data")
        except Exception as exc:  # noqa: BLE001 - reported with the route, not raised
            db.session.rollback()
            return None, f"500 ({type(exc).__name__}: {exc})"[:200]
        return response, str(response.status_code)

    def fail(self, method: str, path: str, actor: str, status: str, wanted: str) -> None:
        self.failures.append(f"{method:4} {path} [{actor}] -> {status}, wanted {wanted}")

    def expect(self, actor: str, method: str, case: Case, wanted: set[int], *,
               csrf: bool = True, leak: bool = False) -> Any:
        """One request; inside `refused()` it must also leave the tables as they were."""
        data = case.route.data if case.route else None
        response, status = self.request(actor, method, case.path, csrf=csrf, data=data)
        if response is None or response.status_code not in wanted:
            self.fail(method, case.path, actor, status, "/".join(map(str, sorted(wanted))))
        if response is not None and leak and MARK.encode() in response.get_data():
            self.fail(method, case.path, actor, status, f"no {MARK} in the answer")
        if self.batch is not None:
            self.batch.append((actor, method, case, csrf))
        return response

    @contextmanager
    def refused(self, label: str) -> Iterator[None]:
        """Requests that must change nothing: the tables are compared before and after the
        whole batch (a fingerprint costs some sixty queries); if they changed, the batch is
        replayed one request at a time to name the culprits."""
        before = self.fingerprint()
        self.batch = []
        try:
            yield
        finally:
            batch, self.batch = self.batch, None
        after = self.fingerprint()
        changed = sorted(n for n in before if before[n] != after[n])
        if not changed:
            return
        named = len(self.failures)
        for actor, method, case, csrf in batch:
            before = self.fingerprint()
            _response, status = self.request(actor, method, case.path, csrf=csrf,
                                             data=case.route.data if case.route else None)
            after = self.fingerprint()
            diff = sorted(n for n in before if before[n] != after[n])
            if diff:
                self.fail(method, case.path, actor, status, f"no change, not in {diff}")
        if len(self.failures) == named:
            self.failures.append(f"{label}: a refused request changed {changed}")

    def report(self) -> str:
        return f"{len(self.failures)} problem(s):\n" + "\n".join(self.failures)


def walk_record_routes(walker: Walker, all_cases: list[Case]) -> None:
    """Each role on every record route: the page if the tables allow it, else a 404; a POST
    it may not make is refused (403/404) and changes nothing; outsiders never see A's data."""
    record_cases = [c for c in all_cases if c.route is not None]
    for actor in ACTORS:
        for case in record_cases:
            if "GET" in case.rule.methods:
                allowed = actor in case.route.get
                walker.expect(actor, "GET", case, OK if allowed else DENIED_GET,
                              leak=actor in OUTSIDERS)
        with walker.refused(f"{actor}'s refused POSTs"):
            for case in record_cases:
                if "POST" in case.rule.methods and actor not in case.route.post:
                    walker.expect(actor, "POST", case, DENIED_POST)


def walk_other_pages(walker: Walker, all_cases: list[Case]) -> None:
    """Every other page as a few roles: never a server error, never A's records to an
    outsider, and every private page opens for the superuser."""
    for actor in SWEEPERS:
        for case in all_cases:
            if case.route is not None or "GET" not in case.rule.methods:
                continue
            public = case.rule.rule in PUBLIC
            wanted = OK if actor == "root" and not public else set(range(200, 500))
            walker.expect(actor, "GET", case, wanted, leak=actor in OUTSIDERS and not public)


def walk_anonymous(walker: Walker, all_cases: list[Case]) -> None:
    """Anonymous: the sign-in page (or a 401/404) everywhere but the public routes; a POST
    (with a valid CSRF token) changes nothing."""
    def visit(method: str, case: Case) -> None:
        public = case.rule.rule in PUBLIC
        wanted = {PUBLIC[case.rule.rule][method]} if public else {302, 401, 404}
        response = walker.expect("anonymous", method, case, wanted, leak=not public)
        if response is not None and response.status_code == 302 and not public:
            target = response.headers.get("Location", "")
            if not target.split("?")[0].endswith("/login"):
                walker.fail(method, case.path, "anonymous", f"302 to {target}",
                            "302 to /login")

    for case in all_cases:
        if "GET" in case.rule.methods:
            visit("GET", case)
    with walker.refused("anonymous POSTs"):
        for case in all_cases:
            if "POST" in case.rule.methods and case.rule.rule not in PUBLIC:
                visit("POST", case)
    for case in all_cases:
        if "POST" in case.rule.methods and case.rule.rule in PUBLIC:
            visit("POST", case)


def walk_without_csrf(walker: Walker, all_cases: list[Case]) -> None:
    """The superuser's POST without the CSRF token: a 400 and nothing changed."""
    with walker.refused("POSTs without a CSRF token"):
        for case in all_cases:
            if "POST" in case.rule.methods and case.rule.rule not in CSRF_EXEMPT:
                walker.expect("root", "POST", case, {400}, csrf=False)


def walk_with_a_token(walker: Walker, all_cases: list[Case], app: Flask) -> None:
    """Root's API token opens the `@token_api` views and nothing else: every other page
    answers it as it answers an anonymous visitor, and its POSTs change nothing."""
    for case in all_cases:
        public = case.rule.rule in PUBLIC
        if "GET" not in case.rule.methods or public:
            continue
        wanted = OK if case.rule.rule in TOKEN_ROUTES else {302, 401, 404}
        response = walker.expect("token", "GET", case, wanted, leak=False)
        if response is not None and response.status_code == 302:
            target = response.headers.get("Location", "")
            if not target.split("?")[0].endswith("/login"):
                walker.fail("GET", case.path, "token", f"302 to {target}", "302 to /login")
    with walker.refused("POSTs with an API token to other views"):
        for case in all_cases:
            if ("POST" in case.rule.methods and case.rule.rule not in PUBLIC
                    and case.rule.rule not in TOKEN_ROUTES):
                walker.expect("token", "POST", case, {302, 400, 401, 404}, csrf=False)


def test_the_walk_knows_every_route_and_fills_every_argument(make_app):
    """A new route fails here until it is classified above (and so walked)."""
    assert table_problems(make_app(ADDONS)) == []


def test_exactly_the_listed_views_are_open_to_api_tokens(make_app):
    app = make_app(ADDONS)
    marked = {rule.rule for rule in app.url_map.iter_rules()
              if getattr(app.view_functions[rule.endpoint], "birga_token_api", False)}
    assert marked == TOKEN_ROUTES


@pytest.mark.slow  # about a thousand requests
def test_every_route_answers_each_role_as_its_access_allows(make_app, make_user):
    app = make_app(ADDONS)
    with app.app_context():
        with app.test_request_context():
            world = build_world(app, make_user)
        all_cases = cases(app, world["ids"])
        walker = Walker(app, world)
        walk_record_routes(walker, all_cases)
        walk_other_pages(walker, all_cases)
        walk_anonymous(walker, all_cases)
        walk_with_a_token(walker, all_cases, app)
        walk_without_csrf(walker, all_cases)  # last: a bug here could sign root out
        records = sum(1 for c in all_cases if c.route is not None)
        print(f"route walk: {len(all_cases)} addresses ({records} with records) as "
              f"{len(ACTORS)} roles and anonymously: {walker.requests} requests")
        assert not walker.failures, walker.report()
