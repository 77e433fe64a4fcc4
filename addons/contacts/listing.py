"""The contacts list as a query: filters from the address, the sort, and one page of rows.

Why it is built this way:
- Names sort by the `sort_<lang>` ICU key column of the reader's language, ordered with `id`
  and under `active = true`, exactly the composite index `(active, sort_<lang>, id)`: the
  database walks the index and stops after LIMIT rows, so page 2,000 costs an index skip, not a
  sort of the table.
- Everything goes through `core.security` (`rule_clause`), so record rules narrow the rows
  (and the total) in SQL.
- A page is ONE statement: the rows, the list's total as a scalar subquery (summed from the
  partner totals the database keeps, `totals.py`, when the rule and the filters allow, else
  a `count(*)` with the same filters), and each row's tag names as a JSON array; one more
  for the custom values shown in the list, if any, and for the names of inactive owners.
"""
from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from flask_babel import get_locale
from sqlalchemy import Select, and_, bindparam, exists, func, literal_column, or_, select

from core.api import User, db, read, rule_clause, rule_clause_on, scoped, shared_cache, utcnow

from . import services
from .custom_fields import filter_conditions, filter_keys
from .models import (
    KINDS,
    SEGMENTS,
    STATUSES,
    CustomField,
    Partner,
    PartnerTag,
    Tag,
)
from .totals import KEPT, PartnerTotal

#: Sort names the list offers; "-" prefix for descending.
SORTS = ("name", "-name", "-created", "created", "-last_contact", "last_contact", "city",
         "-city")
PER_PAGE = (20, 50, 100, 200)
DEFAULT_PER_PAGE = 50
#: Query-string keys that are filters (kept in saved filters, dropped by "clear").
FILTER_KEYS = ("q", "kind", "owner", "status", "tag", "segment", "in_segment", "city", "country",
               "idle")
SORT_LANGUAGES = ("en", "lv", "ru", "uz", "kk", "ro")
#: Columns a list row reads: the rest (search text, other sort keys) stays in the database.
ROW_COLUMNS = ("id", "kind", "name", "company_id", "company_name", "phone", "email", "city",
               "country", "status", "owner_id", "segment", "last_contact_at", "created_at")


def sort_language() -> str:
    """The reader's language, as the suffix of a `sort_<lang>` column."""
    lang = str(get_locale() or "en").split("_")[0]
    return lang if lang in SORT_LANGUAGES else "en"


def _int(value: Any, default: int | None = None) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return default


#: The query values `ListParams.url` changes per link (the filters stay).
_PAGING = frozenset(("sort", "page", "per_page"))


def _paging_query(sort: str, page: int, per_page: int) -> str:
    """The paging part of a link, defaults left out, written directly: `sort` is one of
    `SORTS` and the numbers are ints, so nothing needs quoting (`urlencode` per link was a
    twentieth of the list page)."""
    parts = [] if sort == "name" else [f"sort={sort}"]
    if page != 1:
        parts.append(f"page={int(page)}")
    if per_page != DEFAULT_PER_PAGE:
        parts.append(f"per_page={int(per_page)}")
    return "&".join(parts)


def _without_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """Query values minus the paging ones at their defaults (shorter, canonical links)."""
    defaults = {"sort": "name", "page": 1, "per_page": DEFAULT_PER_PAGE}
    return {k: v for k, v in values.items() if k not in defaults or defaults[k] != v}


@dataclass
class ListParams:
    """What the list shows, parsed from (and written back to) the query string."""

    q: str = ""
    kind: str = ""
    owner: str = ""  # a user id, "me" or "none"
    status: list[str] = field(default_factory=list)
    tag: int | None = None
    segment: str = ""  # an ABC class, or "none"
    in_segment: int | None = None  # a named segment's id (`segment_models.Segment`)
    city: str = ""
    country: str = ""
    idle: int | None = None  # no activity for this many days
    custom: dict[str, str] = field(default_factory=dict)
    sort: str = "name"
    page: int = 1
    per_page: int = DEFAULT_PER_PAGE

    @classmethod
    def parse(cls, args: Mapping[str, Any], fields: list[CustomField]) -> ListParams:
        getlist = getattr(args, "getlist", None)
        statuses = getlist("status") if getlist else ([args["status"]] if args.get("status")
                                                       else [])
        sort = args.get("sort") or "name"
        per_page = _int(args.get("per_page"), DEFAULT_PER_PAGE)
        idle = _int(args.get("idle"))
        return cls(
            q=(args.get("q") or "").strip()[:200],
            kind=args.get("kind") if args.get("kind") in KINDS else "",
            owner=str(args.get("owner") or "").strip(),
            status=[s for s in statuses if s in STATUSES],
            tag=_int(args.get("tag")),
            segment=args.get("segment") if args.get("segment") in (*SEGMENTS, "none") else "",
            in_segment=_int(args.get("in_segment")),
            city=(args.get("city") or "").strip()[:120],
            country=(args.get("country") or "").strip().upper()[:2],
            idle=idle if idle and idle > 0 else None,
            custom={k: str(args[k]) for k in filter_keys(fields) if args.get(k)},
            sort=sort if sort in SORTS else "name",
            page=max(_int(args.get("page"), 1) or 1, 1),
            per_page=per_page if per_page in PER_PAGE else DEFAULT_PER_PAGE,
        )

    def filters(self) -> dict[str, Any]:
        """The filter part as query-string values (for saved filters and links)."""
        values: dict[str, Any] = {"q": self.q, "kind": self.kind, "owner": self.owner,
                                  "status": list(self.status), "tag": self.tag or "",
                                  "segment": self.segment, "in_segment": self.in_segment or "",
                                  "city": self.city,
                                  "country": self.country, "idle": self.idle or "",
                                  **self.custom}
        return {k: v for k, v in values.items() if v not in ("", None, [])}

    def args(self, **changes: Any) -> dict[str, Any]:
        """Query-string values of this list with `changes` applied (sort, page...)."""
        return _without_defaults({**self.filters(), "sort": self.sort, "page": self.page,
                                  "per_page": self.per_page, **changes})

    def url(self, base: str, **changes: Any) -> str:
        """`base` (the list's own address, built once) with this list's query and `changes`:
        a page has a dozen sort and page links, so the filters are encoded once (`url_for`
        with query values cost ten times this, encoding the whole query per link a tenth of
        the template)."""
        if not changes.keys() <= _PAGING:
            query = urlencode(self.args(**changes), doseq=True)
        else:
            paging = _paging_query(changes.get("sort", self.sort), changes.get("page", self.page),
                                   changes.get("per_page", self.per_page))
            query = "&".join(filter(None, (self._filter_query, paging)))
        return f"{base}?{query}" if query else base

    @cached_property
    def _filter_query(self) -> str:
        return urlencode(self.filters(), doseq=True)

    @property
    def active_filters(self) -> bool:
        return bool(self.filters())


def _case_insensitive_equals(column: Any, value: str) -> Any:
    """`column` equals `value` ignoring case, in any script.

    PostgreSQL's `lower()` folds every script. SQLite's folds ASCII only, so there we also
    accept the usual ways a value is capitalised ("москва" finds "Москва", "piatra neamț"
    finds "Piatra Neamț") and, through `lower()`, any ASCII case.
    """
    if db.engine.dialect.name == "sqlite":
        folded = "".join(c.lower() if c.isascii() else c for c in value)
        variants = {value, value.lower(), value.upper(), value.title(), value.capitalize()}
        return or_(column.in_(sorted(variants)), func.lower(column) == folded)
    return func.lower(column) == value.lower()


def conditions(params: ListParams, fields: list[CustomField], user: Any,
               seen: frozenset[int] = frozenset()) -> list[Any]:
    """The WHERE conditions of the filters (record rules are added by `scoped`). `seen`: the
    named segments being evaluated around this filter (a dynamic segment may filter on
    another one, never on itself)."""
    found: list[Any] = [Partner.active.is_(True)]
    if params.q:
        ids = services.search_ids(params.q)
        if ids is not None:
            found.append(Partner.id.in_(ids))
    if params.kind:
        found.append(Partner.kind == params.kind)
    if params.owner == "me":
        found.append(Partner.owner_id == user.id)
    elif params.owner == "none":
        found.append(Partner.owner_id.is_(None))
    elif _int(params.owner) is not None:
        found.append(Partner.owner_id == _int(params.owner))
    if params.status:
        found.append(Partner.status.in_(params.status))
    if params.tag:
        found.append(exists(select(PartnerTag.tag_id).where(
            PartnerTag.partner_id == Partner.id, PartnerTag.tag_id == params.tag)))
    if params.segment == "none":
        found.append(Partner.segment.is_(None))
    elif params.segment:
        found.append(Partner.segment == params.segment)
    if params.in_segment:
        from .segments import in_segment

        found.append(in_segment(params.in_segment, seen))
    if params.city:
        found.append(_case_insensitive_equals(Partner.city, params.city))
    if params.country:
        found.append(Partner.country == params.country)
    if params.idle:
        since = utcnow() - timedelta(days=params.idle)
        found.append(or_(Partner.last_contact_at.is_(None), Partner.last_contact_at < since))
    found.extend(filter_conditions(fields, params.custom))
    return found


def order_by(params: ListParams, lang: str) -> list[Any]:
    descending = params.sort.startswith("-")
    key = params.sort.lstrip("-")
    name_key = getattr(Partner, f"sort_{lang}")
    if key == "created":
        # Ids grow with creation time and are the primary key: an index, unlike created_at.
        columns = [Partner.id]
    elif key == "last_contact":
        column = Partner.last_contact_at.desc() if descending else Partner.last_contact_at.asc()
        return [column.nulls_last(), Partner.id.desc() if descending else Partner.id]
    elif key == "city":
        columns = [Partner.city, name_key, Partner.id]
    else:
        columns = [name_key, Partner.id]
    return [c.desc() for c in columns] if descending else columns


def base_query(params: ListParams, fields: list[CustomField], user: Any) -> Select:
    """`select(Partner)` with the filters and record rules, no order and no limit."""
    return scoped(select(Partner).where(and_(*conditions(params, fields, user))), user)


@dataclass
class Page:
    rows: list[Any]  # `ListRow`s
    total: int
    params: ListParams
    owners: dict[int, str]
    tags: dict[int, list[str]]  # tag names per partner id
    custom_values: dict[int, dict[int, Any]]

    @property
    def pages(self) -> int:
        return max((self.total + self.params.per_page - 1) // self.params.per_page, 1)

    def window(self, radius: int = 2) -> list[int]:
        """Page numbers around the current one, plus the first and the last."""
        current, last = self.params.page, self.pages
        numbers = {1, last, *range(max(current - radius, 1), min(current + radius, last) + 1)}
        return sorted(numbers)


def where_clause(params: ListParams, fields: list[CustomField], user: Any) -> Any:
    """The filters and the record rules as one condition, built (and a search run) once for
    both the count and the page."""
    found = conditions(params, fields, user)
    rule = rule_clause(Partner, user)
    return and_(*found) if rule is None else and_(*found, rule)


#: From this offset on, LIMIT and OFFSET are written into the SQL instead of bound.
DEEP_OFFSET = 1000


def _literal(value: int, offset: int) -> Any:
    """On a deep page, `value` as a literal: SQLite plans bound LIMIT/OFFSET as if small, so
    for a salesperson (own records only) it would walk the whole name index skipping rows
    instead of sorting their few thousand through the owner index. Validated ints only."""
    return literal_column(str(int(value))) if offset >= DEEP_OFFSET else value


@dataclass(frozen=True)
class Statements:
    """The count and the page of one list (filters, record rules, sort), ready to run."""

    count: Select
    #: The page, each row with the list's total as `total` (its count as a scalar subquery,
    #: run once per statement): one statement per page instead of two. Bound `page_limit`
    #: and `page_offset`, or literals on a deep page.
    rows: Select


def _statements_key(params: ListParams, fields: Any, user: Any, lang: str,
                    offset: int) -> tuple[Any, ...] | None:
    """What the statements depend on besides rows that end the cache (custom fields,
    roles and rules: `core.cache`); None for what cannot be kept: a search (its ids come
    from the search index), "no activity for N days" (it moves with the clock), a named
    segment (a dynamic one may hold either) and deep pages (their LIMIT/OFFSET are written
    into the SQL)."""
    if params.q or params.idle or params.in_segment or offset >= DEEP_OFFSET:
        return None
    filters = tuple((k, tuple(v) if isinstance(v, list) else v)
                    for k, v in sorted(params.filters().items()))
    return (user.id, bool(user.is_admin), filters, params.sort, lang, offset == 0)


@shared_cache(key=_statements_key, maxsize=2048)
def statements(params: ListParams, fields: Any, user: Any, lang: str,
               offset: int) -> Statements:
    """The list's statements, built once per worker for a user's filters and sort: building
    them (conditions, record rules, three selects) and SQLAlchemy's cache key for fresh
    statements cost about as much as running them. Statements are immutable and bound
    values go in at execution, so one object serves every request."""
    where = where_clause(params, fields, user)
    order = order_by(params, lang)
    if offset >= DEEP_OFFSET:
        limit, skip = _literal(params.per_page, offset), _literal(offset, offset)
    else:
        limit, skip = bindparam("page_limit"), bindparam("page_offset")
    count = kept_count(params, user)
    if count is None:
        # count(*), not count(id): SQLite then counts index entries without decoding the id
        # of each (0.34 -> 0.20 ms for a salesperson's 6,000 contacts).
        count = select(func.count()).select_from(Partner).where(where)
    columns = select(*(getattr(Partner, c) for c in ROW_COLUMNS),
                     count.scalar_subquery().label("total"), _tag_names().label("tag_names"))
    if offset == 0:
        # The first page, most pages shown: read in index order, stop after LIMIT rows.
        return Statements(count, columns.where(where).order_by(*order).limit(limit))
    # Further pages: pick the page's ids first (the sort index covers them: no table reads
    # for the skipped rows), then read those rows whole.
    page_ids = select(Partner.id).where(where).order_by(*order).limit(limit).offset(skip)
    return Statements(count, columns.where(Partner.id.in_(page_ids)).order_by(*order))


#: The filters the kept totals (`totals.PartnerTotal`) can answer.
_KEPT_FILTERS = frozenset(("kind", "owner", "status"))


def kept_count(params: ListParams, user: Any) -> Select | None:
    """The list's total summed from the kept totals (a few rows), under the record rules and
    the filters; None when a filter or the rule reads more than the totals keep (then the
    partners are counted). The conditions are `conditions()`' over the totals' columns."""
    if not params.filters().keys() <= _KEPT_FILTERS:
        return None
    try:
        rule = rule_clause_on(Partner, KEPT, user)
    except LookupError:
        return None
    found: list[Any] = [KEPT["active"].is_(True)]
    if params.kind:
        found.append(KEPT["kind"] == params.kind)
    owner = KEPT["owner_id"]  # 0: nobody
    if params.owner == "me":
        found.append(owner == user.id)
    elif params.owner == "none":
        found.append(owner == 0)
    elif _int(params.owner) is not None:
        found.append(owner == _int(params.owner))
    if params.status:
        found.append(KEPT["status"].in_(params.status))
    if rule is not None:
        found.append(rule)
    return select(func.coalesce(func.sum(PartnerTotal.partners), 0)).where(*found)


def _tag_names() -> Any:
    """A row's tag names as a JSON array (NULL or `[]` without tags), read with the row: a statement
    of its own for the page's tags cost a round trip (0.1 ms of Python on SQLite, 0.4 ms on
    PostgreSQL). PostgreSQL orders them by name here; SQLite cannot order an aggregate, so
    `tag_names()` sorts them by code point there, as its binary `ORDER BY` does."""
    if db.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import aggregate_order_by

        names = func.json_agg(aggregate_order_by(Tag.name, Tag.name))
    else:
        names = func.json_group_array(Tag.name)
    return (select(names).select_from(PartnerTag).join(Tag, Tag.id == PartnerTag.tag_id)
            .where(PartnerTag.partner_id == Partner.id).scalar_subquery())


def tag_names(value: Any) -> list[str]:
    """The names `_tag_names()` read for a row, by name."""
    if not value or value == "[]":
        return []
    if isinstance(value, str):  # SQLite's JSON text (psycopg decodes PostgreSQL's json)
        return sorted(json.loads(value))
    return list(value)


def fetch(params: ListParams, fields: list[Any], list_fields: list[Any],
          user: Any, user_names: Mapping[int, str] | None = None) -> Page:
    """One page of the list and what its rows show, in a fixed number of queries.

    Rows are named tuples (`ListRow`) of the `ROW_COLUMNS` and more, not ORM objects: the page
    only shows them, and skipping the identity map halves the cost of reading them.
    `user_names` (id -> name of the active users, which the page reads anyway for its
    filters) saves the query for the owners' names unless an owner is inactive.
    """
    from .custom_fields import values_for

    lang = sort_language()
    rows = _page_rows(params, fields, user, lang)
    if rows:
        total = rows[0].total
    elif params.page == 1:
        total = 0
    else:  # a page past the end (a stale link, rows deleted meanwhile) shows the last one
        total = read(statements(params, fields, user, lang, 0).count).scalar() or 0
        last = max((total + params.per_page - 1) // params.per_page, 1)
        if last != params.page:
            params.page = last
            rows = _page_rows(params, fields, user, lang)
    ids = [r.id for r in rows]
    known = user_names or {}
    owners = {r.owner_id: known[r.owner_id] for r in rows if r.owner_id in known}
    missing = {r.owner_id for r in rows if r.owner_id and r.owner_id not in known}
    if missing:
        owners.update((uid, name or login) for uid, name, login in read(
            select(User.id, User.name, User.login).where(User.id.in_(missing))))
    tags = {r.id: tag_names(r.tag_names) for r in rows if r.tag_names and r.tag_names != "[]"}
    return Page(rows, total, params, owners, tags, values_for(ids, list_fields))


#: A row of the page: the `ROW_COLUMNS`, the list's total and the row's tags (JSON).
ListRow = namedtuple("ListRow", (*ROW_COLUMNS, "total", "tag_names"))  # type: ignore[misc]


def _page_rows(params: ListParams, fields: Any, user: Any, lang: str) -> list[Any]:
    """The page's rows as named tuples: reading an attribute of SQLAlchemy's `Row` costs
    ~0.4 µs (a lookup by name each time), of a named tuple ~0.03 µs, and the page reads
    fifteen of each of its rows (a tenth of the page's time)."""
    offset = (params.page - 1) * params.per_page
    query = statements(params, fields, user, lang, offset).rows
    return list(map(ListRow._make,
                    read(query, {"page_limit": params.per_page, "page_offset": offset})))




def selected(ids: list[int], user: Any) -> list[Partner]:
    """The ticked partners the user may see (others are silently left out, as if absent)."""
    if not ids:
        return []
    return list(db.session.scalars(scoped(
        select(Partner).where(Partner.id.in_(ids[:1000]), Partner.active.is_(True)), user)))
