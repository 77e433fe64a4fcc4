"""Products: read by every documents reader, changed by managers; names per language, dated
prices, CSV import."""
from __future__ import annotations

import csv
import io
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select

from addons.documents.models import Product, ProductPrice
from addons.documents.products_import import import_products
from addons.documents.tests.test_offers import make_product
from core.api import assign_roles, db, seed_reference_data, set_vat_rate
from core.testing import csrf_token

pytestmark = pytest.mark.addons("documents")

GENERATOR = Path("/work/shared/bench/gen_dataset.py")
D = Decimal


def manager(make_user):
    user = make_user("mara")
    assign_roles(user, "sales_manager")
    return user


def test_salesperson_sees_the_catalogue_read_only(app, client, make_user, login):
    """Salespeople quote from the catalogue (prices, stock) but only managers change it."""
    product = make_product("DESK-1", prices={date(2020, 1, 1): "249.00"}, stock="7",
                           names={"lv": "Galds"})
    db.session.commit()
    seller = make_user("anna")
    assign_roles(seller, "salesperson")
    login(client, seller)
    listing = client.get("/documents/products")
    assert listing.status_code == 200
    page = listing.get_data(as_text=True)
    assert "DESK-1" in page and "€249.00" in page
    assert "/documents/products/new" not in page and "/documents/products/import" not in page
    assert 'href="/documents/products"' in page  # the menu entry
    card = client.get(f"/documents/products/{product.id}")
    assert card.status_code == 200
    html = card.get_data(as_text=True)
    content = html.split('<main', 1)[1]
    assert "€249.00" in content and "Galds" in content and "<form" not in content
    assert client.get("/documents/products/new").status_code == 404
    assert client.get("/documents/products/import").status_code == 404
    csrf = csrf_token(client, "/documents/offers")
    refused = [client.post(f"/documents/products/{product.id}", data={
                   "csrf_token": csrf, "sku": "HACK", "name": "Hacked", "unit": "pcs",
                   "vat_category": "standard"}),
               client.post(f"/documents/products/{product.id}/prices", data={
                   "csrf_token": csrf, "currency": "EUR", "price": "1",
                   "valid_from": "2026-01-01"})]
    assert [r.status_code for r in refused] == [404, 404]
    db.session.expire_all()
    assert db.session.get(Product, product.id).sku == "DESK-1"
    assert db.session.scalar(select(func.count(ProductPrice.id))
                             .where(ProductPrice.product_id == product.id)) == 1


def test_pager_follows_each_users_language(app, make_user, login):
    """The pager macro translates: imported without context it kept the first page's
    language for everyone after (Jinja caches an imported template's module)."""
    for i in range(51):
        make_product(f"P-{i:03d}")
    db.session.commit()
    pages = []
    for name, locale in (("ivan", "ru"), ("anna", "en"), ("ilze", "lv")):
        user = make_user(name, locale=locale)
        assign_roles(user, "salesperson")
        client = app.test_client()
        login(client, user)
        pages.append(client.get("/documents/products").get_data(as_text=True))
    assert "Страница 1 из 2" in pages[0] and "Далее" in pages[0]
    assert "Page 1 of 2" in pages[1] and ">Next<" in pages[1]
    assert "Страница" not in pages[1] and "Страница" not in pages[2]


def test_manager_creates_a_product_with_names_per_language(app, client, make_user, login):
    login(client, manager(make_user))
    csrf = csrf_token(client, "/documents/products/new")
    response = client.post("/documents/products/new", data={
        "csrf_token": csrf, "sku": "WIN-1", "name": "Window", "unit": "pcs",
        "vat_category": "reduced", "track_stock": "y", "stock": "12,5", "active": "y",
        "name_lv": "Logs", "name_ru": "Окно", "description_kk": "Терезе", "name_ro": " "})
    assert response.status_code == 302
    product = db.session.scalars(select(Product).where(Product.sku == "WIN-1")).one()
    assert product.names == {"lv": "Logs", "ru": "Окно"}
    assert product.descriptions == {"kk": "Терезе"}
    assert (product.vat_category, product.track_stock, product.stock) == ("reduced", True,
                                                                          D("12.5"))
    duplicate = client.post("/documents/products/new", data={
        "csrf_token": csrf, "sku": "WIN-1", "name": "Other", "unit": "pcs",
        "vat_category": "standard"})
    assert "Another product has this SKU." in duplicate.get_data(as_text=True)


def test_new_dated_price_is_added_not_overwritten(app, client, make_user, login):
    product = make_product(prices={date(2025, 1, 1): "10.00"})
    db.session.commit()
    login(client, manager(make_user))
    url = f"/documents/products/{product.id}"
    csrf = csrf_token(client, url)
    client.post(f"{url}/prices", data={"csrf_token": csrf, "currency": "eur",
                                        "price": "12,50", "valid_from": "2026-01-01"})
    rows = db.session.execute(select(ProductPrice.valid_from, ProductPrice.price)
                              .where(ProductPrice.product_id == product.id)
                              .order_by(ProductPrice.valid_from)).all()
    assert [tuple(r) for r in rows] == [(date(2025, 1, 1), D("10.00")),
                                        (date(2026, 1, 1), D("12.50"))]
    page = client.get(url).get_data(as_text=True)
    assert "€12.50" in page and "€10.00" in page


def generated_products(tmp_path: Path) -> str:
    subprocess.run([sys.executable, str(GENERATOR), "--out", str(tmp_path), "--contacts",
                    "1000"], check=True, capture_output=True)
    return (tmp_path / "products.csv").read_text(encoding="utf-8")


@pytest.mark.skipif(not GENERATOR.exists(), reason="the shared dataset generator is absent")
def test_generator_products_csv_imports_and_reimports_idempotently(app, tmp_path):
    seed_reference_data()
    set_vat_rate("LV", "reduced", "12", date(2012, 7, 1))  # Latvia's reduced rate
    text = generated_products(tmp_path)
    rows = list(csv.DictReader(io.StringIO(text)))
    result = import_products(text, valid_from=date(2026, 1, 1), country="LV")
    db.session.commit()
    assert (result.created, result.updated) == (len(rows), 0)
    assert db.session.scalar(select(func.count()).select_from(Product)) == len(rows)
    first = rows[0]
    product = db.session.scalars(select(Product).where(Product.sku == first["sku"])).one()
    assert product.name == first["name"]
    assert product.stock == D(first["stock"]) and product.track_stock
    assert [(p.currency, p.price) for p in product.prices] == [(first["currency"],
                                                                D(first["price"]))]
    # LV: 21 standard, 12 reduced, 0 zero; 16 and 20 are not Latvian rates and are reported.
    expected = {"21": "standard", "12": "reduced", "0": "zero", "16": "standard",
                "20": "standard"}
    categories = dict(db.session.execute(select(Product.sku, Product.vat_category)).all())
    assert all(categories[r["sku"]] == expected[r["vat_rate"]] for r in rows)
    foreign = sum(r["vat_rate"] in ("16", "20") for r in rows)
    assert len(result.problems) == foreign
    again = import_products(text, valid_from=date(2026, 1, 1), country="LV")
    db.session.commit()
    assert (again.created, again.updated) == (0, len(rows))
    assert db.session.scalar(select(func.count()).select_from(ProductPrice)) == len(rows)


def test_import_reports_bad_rows_and_missing_columns(app):
    seed_reference_data()
    text = "sku,name,price,currency,vat_rate,stock\nA-1,Good,5.00,EUR,21,\n,No sku,1,EUR,21,\n" \
           "B-1,Bad price,x,EUR,21,3\n"
    result = import_products(text, valid_from=date(2026, 1, 1), country="LV")
    assert result.created == 1
    assert [line for line, _ in result.problems] == [3, 4]
    product = db.session.scalars(select(Product).where(Product.sku == "A-1")).one()
    assert not product.track_stock
    missing = import_products("sku,title\nA,B\n", valid_from=date(2026, 1, 1), country="LV")
    assert missing.created == 0 and "name, price" in missing.problems[0][1]


def test_import_page_uploads_a_file(app, client, make_user, login):
    seed_reference_data()
    db.session.commit()
    login(client, manager(make_user))
    csrf = csrf_token(client, "/documents/products/import")
    data = {"csrf_token": csrf, "valid_from": "2026-02-01",
            "file": (io.BytesIO(b"sku,name,price,currency,vat_rate,stock\nZ-1,Zed,9.99,EUR,21,"
                                b"4\n"), "products.csv")}
    response = client.post("/documents/products/import", data=data,
                           content_type="multipart/form-data")
    assert "1 product created, 0 updated." in response.get_data(as_text=True)
    product = db.session.scalars(select(Product).where(Product.sku == "Z-1")).one()
    assert product.prices[0].valid_from == date(2026, 2, 1)
    listing = client.get("/documents/products?q=zed").get_data(as_text=True)
    assert "Z-1" in listing and "€9.99" in listing


def test_demo_loads_products_and_offers_once(app, make_user):
    from addons.documents import demo
    from addons.documents.models import Offer

    make_user("mara")
    demo.load()
    demo.load()
    assert db.session.scalar(select(func.count()).select_from(Product)) == len(demo.PRODUCTS)
    offers = list(db.session.scalars(select(Offer).order_by(Offer.id)))
    # ... and one sent offer per first user whose validity ends soon (the start page's card).
    assert [o.state for o in offers] == ["draft", "sent", "accepted", "declined", "paid",
                                         "sent"]
    assert 0 < (offers[-1].valid_until - offers[-1].offer_date).days - 25 <= 7
    assert all(o.amount_total > 0 for o in offers)
    assert offers[0].number is None and all(o.number for o in offers[1:])


def test_product_list_shows_the_price_valid_today(app, client, make_user, login):
    from datetime import timedelta

    today = date.today()
    make_product("OLD-NEW", prices={today - timedelta(days=400): "5.00",
                                    today - timedelta(days=1): "7.00",
                                    today + timedelta(days=30): "9.00"})
    make_product("NO-PRICE", prices={today + timedelta(days=30): "3.00"})
    db.session.commit()
    login(client, manager(make_user))
    html = client.get("/documents/products").get_data(as_text=True)
    assert "€7.00" in html
    assert "€5.00" not in html and "€9.00" not in html and "€3.00" not in html
    assert "No price" in html
