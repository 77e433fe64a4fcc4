"""Documents: products and prices, commercial offers rendered to PDF, files, sending."""
from __future__ import annotations

from flask import Flask

from core.api import _l, addon_enabled, register_record_rule
from core.loader import AddonContext


def init_app(app: Flask, addon: AddonContext) -> None:
    from .models import Offer

    addon.permission("documents.read", _l("See products, offers and files"))
    addon.permission("documents.write", _l("Create and send offers, upload files"))
    addon.permission("documents.manage", _l("Manage products and prices"))
    addon.permission("documents.template_edit", _l("Edit document templates"))
    register_record_rule(Offer, owner_attr="owner_id", title=_l("Offers"), app=app)
    from .merging import connect_signals

    connect_signals()  # merged contacts keep their offers; sent PDFs are kept

    # Products and offers: menus, the contact card panel and, only when the pipeline addon is
    # enabled, the deal page panel (hooks without a hard dependency: see `offers`).
    from . import views

    addon.menu("documents", _l("Documents"), None, sequence=30, permission="documents.read")
    addon.menu("documents.offers", _l("Offers"), "documents.offers", parent="documents",
               sequence=10, permission="documents.read")
    addon.menu("documents.products", _l("Products"), "documents.products", parent="documents",
               sequence=20, permission="documents.read")
    addon.hook("contacts.card.sidebar", views.render_partner_offers, sequence=30)
    from . import template_views

    addon.hook("contacts.card.sidebar", template_views.render_partner_print, sequence=35)
    from . import dashboard

    addon.hook("core.dashboard", dashboard.render_dashboard, sequence=40)
    if addon_enabled("pipeline", app):
        addon.hook("pipeline.deal.main", views.render_deal_offers, sequence=20)
        addon.hook("pipeline.deal.main", template_views.render_deal_print, sequence=25)
