"""The audit log: creates, updates and deletes of opted-in models are logged with the user and
the changes in the same transaction, rows outlive the record, secrets are never copied, logins
and exports are logged, and only admins can read the log (SQLite and PostgreSQL)."""
from __future__ import annotations

import pytest
from sqlalchemy import Integer, MetaData, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.api import AuditLog, audit, register_record_model
from core.extensions import db
from core.testing import TEST_PASSWORD, acting_as, csrf_token

MODEL = "core.test_audit_card"


class _Base(DeclarativeBase):
    metadata = MetaData()


class Card(_Base):
    """Opted in with `register_record_model` rather than the mixin."""

    __tablename__ = "core_test_audit_card"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(40))
    api_token: Mapped[str | None] = mapped_column(String(64))


class Scratch(_Base):
    """Not registered: never audited."""

    __tablename__ = "core_test_audit_scratch"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(String(100))


register_record_model(MODEL, Card)


@pytest.fixture
def tables(app):
    Card.__table__.create(db.engine)
    Scratch.__table__.create(db.engine)


def log(**where):
    db.session.expire_all()
    query = select(AuditLog).order_by(AuditLog.id)
    for key, value in where.items():
        query = query.where(getattr(AuditLog, key) == value)
    return db.session.scalars(query).all()


def test_create_update_delete_are_logged_and_kept_after_the_record_is_gone(app, tables,
                                                                          make_user):
    anna = make_user("anna")
    with acting_as(app, anna):
        card = Card(name="Acme", phone="+371 2000", api_token="s3cret")
        db.session.add(card)
        db.session.commit()
        card_id = card.id
        card.phone = "+371 3000"  # the commit above expired the signed-in user as well
        db.session.commit()
        db.session.delete(card)
        db.session.commit()
    assert db.session.get(Card, card_id) is None
    rows = log(model=MODEL, record_id=card_id)
    assert [r.action for r in rows] == ["create", "update", "delete"]
    assert {(r.user_id, r.user_login) for r in rows} == {(anna.id, "anna")}
    assert rows[0].changes == {"id": card_id, "name": "Acme", "phone": "+371 2000"}
    assert rows[1].changes == {"phone": ["+371 2000", "+371 3000"]}
    assert rows[2].changes["name"] == "Acme"
    assert all("api_token" not in r.changes for r in rows)


def test_rolled_back_changes_and_unregistered_models_are_not_logged(app, tables):
    card = Card(name="Draft")
    db.session.add(card)
    db.session.flush()
    db.session.rollback()
    db.session.add(Scratch(text="anything"))
    db.session.commit()
    assert log() == []


def test_saving_without_changes_logs_no_update(app, tables):
    card = Card(name="Same")
    db.session.add(card)
    db.session.commit()
    card.name = "Same"
    db.session.commit()
    assert [r.action for r in log(model=MODEL)] == ["create"]


def test_explicit_export_is_logged_with_details(app, tables, make_user):
    anna = make_user("anna")
    with acting_as(app, anna):
        audit("export", model=MODEL, details={"format": "csv", "rows": 12})
        db.session.commit()
    [row] = log(action="export")
    assert (row.user_login, row.model, row.record_id) == ("anna", MODEL, None)
    assert row.changes == {"format": "csv", "rows": 12}


def test_sign_in_success_and_failure_are_logged(app, client, make_user):
    anna = make_user("anna")
    client.post("/login", data={"login": "anna", "password": "wrong",
                                "csrf_token": csrf_token(client)})
    client.post("/login", data={"login": "Anna", "password": TEST_PASSWORD,
                                "csrf_token": csrf_token(client)})
    rows = log()
    assert [(r.action, r.user_login, r.user_id) for r in rows] == [
        ("login_failed", "anna", None), ("login", "anna", anna.id)]


def test_only_admins_see_the_log_and_filters_narrow_it(app, tables, client, make_user, login):
    anna = make_user("anna")
    boss = make_user("boss", is_admin=True)
    with acting_as(app, anna):
        db.session.add_all([Card(name="Alpha Ltd"), Card(name="Beta Ltd")])
        audit("export", model=MODEL, details={"rows": 2})
        db.session.commit()
    login(client, anna)
    assert client.get("/admin/audit/").status_code == 404
    client.post("/logout", data={"csrf_token": csrf_token(client, "/")})

    login(client, boss)
    html = client.get("/admin/audit/").get_data(as_text=True)
    assert "Alpha Ltd" in html and "Beta Ltd" in html
    filtered = client.get("/admin/audit/?action=export").get_data(as_text=True)
    assert "Alpha Ltd" not in filtered and 'class="audit-export"' in filtered
    by_user = client.get("/admin/audit/?user=boss&action=create").get_data(as_text=True)
    assert "Alpha Ltd" not in by_user and "No entries match." in by_user
    by_anna = client.get("/admin/audit/?user=ANNA&action=create").get_data(as_text=True)
    assert "Alpha Ltd" in by_anna and 'class="audit-export"' not in by_anna
    later = client.get("/admin/audit/?from=2999-01-01").get_data(as_text=True)
    assert "No entries match." in later


def test_the_log_reads_in_labels_and_names_with_one_query_per_referenced_table(
        make_app, make_user, login):
    """Not "contacts.partner", "owner_id: 5" and "False": the model's and the fields' labels,
    the user's name and a formatted date, in the reader's language."""
    from sqlalchemy import event

    from addons.contacts.models import Partner

    app = make_app(["contacts"])
    with app.app_context():
        boss = make_user("boss", is_admin=True, locale="ru", name="Борис Босс")
        sara = make_user("sara", name="Sara Seller")
        with acting_as(app, boss):
            firms = [Partner(kind="company", name=f"Firm {i}", owner_id=boss.id)
                     for i in range(4)]
            db.session.add_all(firms)
            db.session.commit()
            for firm in firms:
                firm.owner_id = sara.id
                firm.birthday = None
            firms[0].active = False
            db.session.commit()
        client = app.test_client()
        login(client, boss)
        statements = []
        event.listen(db.engine, "before_cursor_execute",
                     lambda *args: statements.append(args[2]))
        html = client.get("/admin/audit/?action=update").get_data(as_text=True)
    assert ">contacts.partner<" not in html and "owner_id" not in html
    assert "Контакт</span> #" in html and "Менеджер по продажам" in html
    assert html.count("Борис Босс → Sara Seller") == 4
    assert "False" not in html and "✗" in html
    user_lookups = [s for s in statements if "FROM core_user" in s and "core_user.id IN" in s]
    assert len(user_lookups) == 1


def test_every_built_in_record_model_has_a_translated_name_in_the_log(make_app):
    from flask_babel import force_locale

    from core.audit import model_label
    from core.records import registered_models

    app = make_app(["contacts", "pipeline", "documents"])
    built_in = ("contacts.", "pipeline.", "documents.")  # other tests register models too
    names = [n for n in registered_models() if n.startswith(built_in)]
    assert {"contacts.partner", "pipeline.deal", "pipeline.lead", "documents.offer"} <= set(names)
    with app.test_request_context("/"), force_locale("ru"):
        labels = {name: model_label(name) for name in names}
    assert all(label != name and label.isalpha() for name, label in labels.items()), labels


def test_kernel_names_without_a_record_model_read_as_words(app):
    from flask_babel import force_locale

    from core.audit import model_label

    with app.test_request_context(), force_locale("lv"):
        assert model_label("core.company") == "Uzņēmuma rekvizīti"
    assert model_label("fx.unknown") == "fx.unknown"
