"""Sales pipeline: leads from every channel, deals through configurable funnels."""
from __future__ import annotations

from flask import Flask

from core.api import _l, register_record_rule
from core.loader import AddonContext


def init_app(app: Flask, addon: AddonContext) -> None:
    from .models import Deal, Lead

    addon.permission("pipeline.read", _l("See deals and leads"))
    addon.permission("pipeline.write", _l("Create and move deals, work leads"))
    addon.permission("pipeline.manage", _l("Configure pipelines, reclaim and reassign deals"))
    addon.permission("pipeline.reports", _l("See sales reports"))
    register_record_rule(Deal, owner_attr="owner_id", team_attr="team_id", title=_l("Deals"),
                         app=app)
    register_record_rule(Lead, owner_attr="owner_id", title=_l("Leads"), app=app)

    # Deals: menus (colleagues hang Leads/Reports/... under the "sales" parent), settings,
    # the contact card panel, the activity listeners and the contacts signals.
    from . import hooks

    addon.permission("pipeline.export", _l("Export deals"))
    addon.permission("pipeline.import", _l("Import deals"))
    addon.menu("sales", _l("Sales"), None, sequence=20, permission="pipeline.read")
    addon.menu("sales.board", _l("Board"), "pipeline.index", parent="sales", sequence=10,
               permission="pipeline.read")
    addon.menu("sales.deals", _l("Deals"), "pipeline.deals", parent="sales", sequence=20,
               permission="pipeline.read")
    addon.menu("settings.pipelines", _l("Pipelines and stages"), "pipeline.pipelines",
               parent="settings", sequence=60, permission="pipeline.manage")
    addon.menu("settings.lost_reasons", _l("Lost reasons"), "pipeline.lost_reasons",
               parent="settings", sequence=61, permission="pipeline.manage")
    addon.menu("settings.deal_tags", _l("Deal tags"), "pipeline.tags",
               parent="settings", sequence=62, permission="pipeline.manage")
    addon.hook("contacts.card.sidebar", hooks.render_partner_deals, sequence=20)
    from . import dashboard

    addon.hook("core.dashboard", dashboard.render_dashboard, sequence=30)
    hooks.connect_signals()

    from .leads import init_leads

    init_leads(app, addon)

    from .report_views import init_reports

    init_reports(app, addon)
