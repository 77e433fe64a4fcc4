"""Pages of the workload board, the stale-deal rotation and the sales reports.

Each report page is the same shape (filters, SVG charts, tables with the same numbers, a CSV
export), so one template renders them all from a `Page` of `Table`s whose cells carry both the
text shown (formatted for the reader's locale) and the raw value exported. CSV cells that a
spreadsheet would read as a formula are prefixed with an apostrophe.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import flask_babel
from flask import Flask, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user, login_required
from sqlalchemy import func, select

from core.activities import now
from core.api import db, format_date, format_money, format_number
from core.loader import AddonContext
from core.security import permission_required, rule_clause

from . import rotation
from .charts import Chart, bar_chart
from .models import Capacity, Deal, Pipeline
from .reports import (
    ReportFilter,
    activities_done,
    cycle_length,
    forecast,
    funnel,
    revenue_won,
    win_loss,
)
from .state import pipeline_label
from .views import bp
from .workload import can_see_workload, people_for, team_choices, workload

__all__ = ["REPORTS", "csv_safe", "init_reports"]

#: First characters a spreadsheet reads as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
#: Query arguments of the report filter (kept when switching reports and exporting).
FILTER_ARGS = ("from", "to", "team", "user", "pipeline")


# -- presentation ----------------------------------------------------------------------------
@dataclass
class Cell:
    text: str
    raw: Any
    numeric: bool = False


@dataclass
class Table:
    caption: str
    columns: list[str]
    rows: list[list[Cell]] = field(default_factory=list)


@dataclass
class Page:
    title: str
    intro: str = ""
    charts: list[Chart] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _text(value: Any) -> Cell:
    return Cell(str(value or ""), value or "")


def _count(value: int) -> Cell:
    return Cell(format_number(value), value, numeric=True)


def _money(amount: Decimal, currency: str) -> Cell:
    return Cell(format_money(amount, currency), amount, numeric=True)


def _percent(value: Decimal | None) -> Cell:
    if value is None:
        return Cell("—", "", numeric=True)
    # One decimal: conversion rates of 71.4 % and 71.0 % are different news.
    return Cell(flask_babel.format_percent(value, "#,##0.0%"),
                value.quantize(Decimal("0.0001")), numeric=True)


def _days(value: Decimal | None) -> Cell:
    if value is None:
        return Cell("—", "", numeric=True)
    return Cell(format_number(value, 1), value, numeric=True)


def _month(key: str) -> str:
    """A month as a heading: CLDR's stand-alone month ("LLLL"), so Russian reads "ноябрь 2026"
    (nominative), not the genitive "ноября" that "MMMM" gives for use inside a date."""
    if not key:
        return _("No expected date")
    return format_date(date.fromisoformat(key + "-01"), "LLLL y")


def _name(name: str, user_id: int | None) -> str:
    return name if user_id is not None else _("Nobody (pool)")


def csv_safe(value: Any) -> str:
    """A cell as CSV text; strings a spreadsheet would run as a formula get a leading "'"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | Decimal | float):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv(page: Page, name: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    for number, table in enumerate(page.tables):
        if number:
            writer.writerow([])
        writer.writerow([csv_safe(table.caption)])
        writer.writerow([csv_safe(c) for c in table.columns])
        for row in table.rows:
            writer.writerow([csv_safe(cell.raw) for cell in row])
    return Response("\ufeff" + out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": f"attachment; filename=\"{name}-{date.today().isoformat()}.csv\""})


# -- filters ---------------------------------------------------------------------------------
def _int(name: str) -> int | None:
    try:
        return int(request.args[name]) if request.args.get(name) else None
    except ValueError:
        return None


def _day(name: str) -> date | None:
    text = request.args.get(name, "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        flash(_("Give dates as YYYY-MM-DD."), "error")
        return None


def read_filter() -> ReportFilter:
    flt = ReportFilter(date_from=_day("from"), date_to=_day("to"), team_id=_int("team"),
                       user_id=_int("user"), pipeline_id=_int("pipeline"))
    if flt.date_from and flt.date_to and flt.date_from > flt.date_to:
        flt.date_from, flt.date_to = flt.date_to, flt.date_from
    return flt


def _choices() -> dict[str, Any]:
    return {
        "teams": team_choices(current_user),
        "people": people_for(current_user),
        "pipelines": list(db.session.scalars(select(Pipeline).where(Pipeline.active.is_(True))
                                             .order_by(Pipeline.sequence, Pipeline.id))),
    }


# -- the reports -----------------------------------------------------------------------------
def funnel_page(flt: ReportFilter) -> Page:
    from .state import stage_label

    report = funnel(flt, current_user)
    page = Page(_("Funnel conversion"), _("Deals created in the period, by the furthest stage "
                                          "they reached, and the share that went on to the "
                                          "next stage."))
    table = Table(_("Funnel"), [_("Stage"), _("Deals reached"), _("Still open here"),
                                _("Lost here"), _("Conversion to the next stage")])
    rows = []
    for step in report.steps:
        label = stage_label(step.stage)
        table.rows.append([_text(label), _count(step.reached), _count(step.open_here),
                           _count(step.lost_here), _percent(step.conversion)])
        rows.append((label, step.reached, format_number(step.reached)))
    page.tables.append(table)
    page.charts.append(bar_chart(_("Deals that reached each stage"), rows, description=ngettext(
        "%(count)s deal created in the period; overall conversion %(rate)s.",
        "%(count)s deals created in the period; overall conversion %(rate)s.",
        report.deals, count=format_number(report.deals), rate=_percent(report.overall).text)))
    return page


def winloss_page(flt: ReportFilter) -> Page:
    from .state import lost_reason_label

    report = win_loss(flt, current_user)
    page = Page(_("Won and lost"), _("Deals closed in the period: the win rate, why deals "
                                     "were lost, and each salesperson's record."))
    summary = Table(_("Summary"), [_("Won"), _("Lost"), _("Win rate")],
                    [[_count(report.won), _count(report.lost), _percent(report.win_rate)]])
    reasons = Table(_("Lost by reason"), [_("Reason"), _("Deals"), _("Share of lost")])
    chart_rows = []
    for reason, count in report.by_reason:
        label = lost_reason_label(reason) if reason is not None else _("No reason")
        reasons.rows.append([_text(label), _count(count),
                             _percent(Decimal(count) / report.lost if report.lost else None)])
        chart_rows.append((label, count, format_number(count)))
    people = Table(_("By salesperson"), [_("Salesperson"), _("Won"), _("Lost"), _("Win rate")])
    for uid, name, won, lost in report.by_person:
        people.rows.append([_text(_name(name, uid)), _count(won), _count(lost),
                            _percent(Decimal(won) / (won + lost) if won + lost else None)])
    page.tables += [summary, reasons, people]
    page.charts.append(bar_chart(_("Lost deals by reason"), chart_rows, description=_(
        "%(won)s won, %(lost)s lost; win rate %(rate)s.", won=format_number(report.won),
        lost=format_number(report.lost), rate=_percent(report.win_rate).text)))
    return page


def cycle_page(flt: ReportFilter) -> Page:
    report = cycle_length(flt, current_user)
    page = Page(_("Sales cycle length"), _("Days from a deal's creation to its win, for deals "
                                           "won in the period."))
    page.tables.append(Table(_("Summary"), [_("Deals won"), _("Average days"),
                                            _("Median days")],
                             [[_count(report.deals), _days(report.average_days),
                               _days(report.median_days)]]))
    people = Table(_("By salesperson"), [_("Salesperson"), _("Deals won"), _("Average days")])
    rows = []
    for uid, name, count, days in report.by_person:
        people.rows.append([_text(_name(name, uid)), _count(count), _days(days)])
        rows.append((_name(name, uid), days, format_number(days, 1)))
    page.tables.append(people)
    page.charts.append(bar_chart(_("Average days to win per salesperson"), rows,
                                 description=ngettext(
        "Average %(days)s days over %(count)s won deal.",
        "Average %(days)s days over %(count)s won deals.", report.deals,
        days=_days(report.average_days).text, count=format_number(report.deals))))
    return page


def revenue_page(flt: ReportFilter) -> Page:
    report = revenue_won(flt, current_user)
    page = Page(_("Revenue won"), _("Amounts of the deals won in the period, per month and per "
                                    "salesperson; each currency on its own."))
    months = Table(_("Per month"), [_("Month"), _("Currency"), _("Deals"), _("Amount")])
    per_currency: dict[str, list[tuple[str, Any, str]]] = {}
    for key, currency, count, amount in report.by_month:
        months.rows.append([Cell(_month(key), key), _text(currency), _count(count),
                            _money(amount, currency)])
        per_currency.setdefault(currency, []).append(
            (_month(key), amount, format_money(amount, currency)))
    people = Table(_("Per salesperson"), [_("Salesperson"), _("Currency"), _("Deals"),
                                          _("Amount")])
    for uid, name, currency, count, amount in report.by_person:
        people.rows.append([_text(_name(name, uid)), _text(currency), _count(count),
                            _money(amount, currency)])
    page.tables += [months, people]
    for currency, rows in per_currency.items():
        page.charts.append(bar_chart(
            _("Revenue won per month in %(currency)s", currency=currency), rows,
            description=_("Total %(amount)s.", amount=format_money(
                report.totals()[currency], currency))))
    return page


def activities_page(flt: ReportFilter) -> Page:
    from core.activities import DEFAULT_TYPES

    rows = activities_done(flt, current_user, now())
    page = Page(_("Activities per salesperson"), _("Activities done in the period by type, the "
                                                   "share done on time, what is overdue now, "
                                                   "and the rating by activities done."))
    codes = [code for code in DEFAULT_TYPES if any(code in r.by_type for r in rows)]
    codes += sorted({c for r in rows for c in r.by_type} - set(codes))
    titles = [str(DEFAULT_TYPES[c][0]) if c in DEFAULT_TYPES else (c or _("Other"))
              for c in codes]
    table = Table(_("Employee rating"), [_("Rank"), _("Salesperson"), *titles, _("Done"),
                                         _("On time"), _("Overdue now")])
    chart_rows = []
    for row in rows:
        table.rows.append([_count(row.rank), _text(row.name),
                           *(_count(row.by_type.get(c, 0)) for c in codes), _count(row.done),
                           _percent(row.on_time_rate), _count(row.overdue)])
        chart_rows.append((row.name, row.done, format_number(row.done)))
    page.tables.append(table)
    page.charts.append(bar_chart(_("Activities done per salesperson"), chart_rows,
                                 description=ngettext(
                                     "%(count)s person.", "%(count)s people.", len(rows),
                                     count=format_number(len(rows)))))
    return page


def forecast_page(flt: ReportFilter) -> Page:
    report = forecast(flt, current_user)
    page = Page(_("Forecast"), _("Open deals by expected close month: the amount, and the "
                                 "weighted pipeline (amount × probability, the deal's own or "
                                 "its stage's), per currency."))
    months = Table(_("Per month"), [_("Month"), _("Currency"), _("Deals"), _("Amount"),
                                    _("Weighted")])
    per_currency: dict[str, list[tuple[str, Any, str]]] = {}
    for line in report.by_month:
        months.rows.append([Cell(_month(line.key), line.key), _text(line.currency),
                            _count(line.deals), _money(line.amount, line.currency),
                            _money(line.weighted, line.currency)])
        per_currency.setdefault(line.currency, []).append(
            (_month(line.key), line.weighted, format_money(line.weighted, line.currency)))
    converted = Table(_("Weighted per month in %(currency)s at today's rates",
                        currency=report.company_currency), [_("Month"), _("Weighted")])
    for key, value in report.converted.items():
        converted.rows.append([Cell(_month(key), key),
                               _money(value, report.company_currency) if value is not None
                               else Cell(_("rate missing"), "")])
    people = Table(_("Per salesperson"), [_("Salesperson"), _("Currency"), _("Deals"),
                                          _("Amount"), _("Weighted")])
    for line in report.by_person:
        people.rows.append([_text(_name(line.key, line.user_id)), _text(line.currency),
                            _count(line.deals), _money(line.amount, line.currency),
                            _money(line.weighted, line.currency)])
    page.tables += [months, converted, people]
    totals = report.totals()
    for currency, rows in per_currency.items():
        page.charts.append(bar_chart(
            _("Weighted pipeline per month in %(currency)s", currency=currency), rows,
            description=_("Weighted total %(weighted)s of %(amount)s open.",
                          weighted=format_money(totals[currency][1], currency),
                          amount=format_money(totals[currency][0], currency))))
    if report.missing_rates:
        page.notes.append(_("No exchange rate for: %(currencies)s.",
                            currencies=", ".join(report.missing_rates)))
    return page


#: url key -> (menu title, page builder)
REPORTS: dict[str, tuple[Any, Callable[[ReportFilter], Page]]] = {
    "forecast": (_l("Forecast"), forecast_page),
    "funnel": (_l("Funnel conversion"), funnel_page),
    "winloss": (_l("Won and lost"), winloss_page),
    "cycle": (_l("Sales cycle length"), cycle_page),
    "revenue": (_l("Revenue won"), revenue_page),
    "activities": (_l("Activities per salesperson"), activities_page),
}


@bp.get("/reports/")
@permission_required("pipeline.reports")
def reports() -> str:
    # The Workload menu entry needs pipeline.manage (menus are cached per permission set);
    # a team lead without it may still open the board, so it is linked from here.
    return render_template("pipeline/reports.html", reports=REPORTS,
                           workload=can_see_workload(current_user))


@bp.get("/reports/<name>")
@permission_required("pipeline.reports")
def report(name: str) -> Any:
    if name not in REPORTS:
        abort(404)
    flt = read_filter()
    page = REPORTS[name][1](flt)
    if request.args.get("export") == "csv":
        return _csv(page, name)
    args = {k: v for k, v in request.args.items() if k in FILTER_ARGS and v}
    return render_template("pipeline/report.html", page=page, name=name, flt=flt,
                           reports=REPORTS, filter_args=args,
                           export_url=url_for("pipeline.report", name=name, export="csv",
                                              **args), pipeline_label=pipeline_label,
                           **_choices())


# -- workload and rotation -------------------------------------------------------------------
def _require_manager() -> None:
    if not can_see_workload(current_user):
        abort(404)


@bp.get("/workload")
@login_required
def workload_board() -> str:
    _require_manager()
    team_id = _int("team")
    people = people_for(current_user, team_id)
    rows = workload(people, now())
    rule = rule_clause(Deal, current_user)
    pipelines = rotation.rotating_pipelines()
    stale_counts = {}
    for pipeline in pipelines:
        query = select(func.count(Deal.id)).where(rotation.stale_clause(pipeline),
                                                  Deal.owner_id.is_not(None))
        stale_counts[pipeline.id] = db.session.scalar(
            query if rule is None else query.where(rule)) or 0
    return render_template("pipeline/workload.html", rows=rows, team_id=team_id,
                           teams=team_choices(current_user), pipelines=pipelines,
                           stale_counts=stale_counts, pipeline_label=pipeline_label,
                           can_set_capacity=current_user.has_permission("pipeline.manage"))


#: Bounds of a salesperson's capacity (live deals) a manager may set.
CAPACITY_RANGE = (1, 10000)


@bp.post("/workload/capacity")
@permission_required("pipeline.manage")
def workload_capacity() -> Any:
    """Set how many live deals one salesperson may hold (assignment and rotation skip people
    at capacity). Only people the manager sees on the board."""
    back = url_for("pipeline.workload_board", team=request.form.get("team") or None)
    person = next((u for u in people_for(current_user)
                   if u.id == request.form.get("user", type=int)), None)
    if person is None:
        abort(404)
    low, high = CAPACITY_RANGE
    limit = request.form.get("capacity", type=int)
    if limit is None or not low <= limit <= high:
        flash(_("Give the capacity as a whole number from %(low)s to %(high)s.",
                low=low, high=high), "error")
        return redirect(back)
    row = db.session.get(Capacity, person.id)
    if row is None:
        row = Capacity(user_id=person.id)
        db.session.add(row)
    row.live_deals = limit
    db.session.commit()
    flash(ngettext("%(name)s may now hold %(num)d live deal.",
                   "%(name)s may now hold %(num)d live deals.", limit,
                   name=person.display_name), "success")
    return redirect(back)


@bp.post("/workload/rotate")
@login_required
def workload_rotate() -> Any:
    """Reclaim the stale deals of a pipeline (optionally one person's) and reassign them."""
    _require_manager()
    pipeline = db.session.get(Pipeline, request.form.get("pipeline", type=int) or 0)
    if pipeline is None or pipeline not in rotation.rotating_pipelines([pipeline.id]):
        flash(_("Choose a pipeline with stale-deal rules."), "error")
        return redirect(url_for("pipeline.workload_board"))
    owner_id = request.form.get("owner", type=int)
    result = rotation.rotate(pipeline, by=current_user._get_current_object(),
                             owner_id=owner_id, where=rule_clause(Deal, current_user))
    flash(_("%(reclaimed)s stale deals reclaimed, %(assigned)s reassigned, %(pool)s left in "
            "the pool.", reclaimed=len(result.reclaimed), assigned=len(result.assigned),
            pool=result.left_in_pool), "success")
    if result.skipped:
        flash(ngettext("%(count)s deal changed meanwhile and was left alone.",
                       "%(count)s deals changed meanwhile and were left alone.",
                       len(result.skipped), count=len(result.skipped)))
    return redirect(url_for("pipeline.workload_board", team=request.form.get("team") or None))


def init_reports(app: Flask, addon: AddonContext) -> None:
    """Menus of the workload board and the reports; the rotation job is declared by importing
    `rotation` (above)."""
    addon.menu("sales.workload", _l("Workload"), "pipeline.workload_board", parent="sales",
               sequence=60, permission="pipeline.manage")
    addon.menu("sales.reports", _l("Reports"), "pipeline.reports", parent="sales",
               sequence=70, permission="pipeline.reports")
