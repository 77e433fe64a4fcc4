"""Numbers typed without a country code: read in `BIRGA_PHONE_REGION`, else in the firm's
own country (`BIRGA_COMPANY_COUNTRY`, LV when unset), and in the contact's country when the
contact has one."""
from __future__ import annotations

import pytest

from addons.contacts import services
from addons.contacts.models import Partner


@pytest.mark.addons("contacts")
def test_latvian_local_number_becomes_e164_with_no_configuration(app):
    app.config.pop("BIRGA_PHONE_REGION", None)
    app.config.pop("BIRGA_COMPANY_COUNTRY", None)
    assert services.default_region() == "LV"
    assert services.normalize_phone("29 123 456") == "+37129123456"


@pytest.mark.addons("contacts")
def test_firm_country_is_the_default_region_when_no_phone_region_is_set(app):
    app.config.pop("BIRGA_PHONE_REGION", None)
    app.config["BIRGA_COMPANY_COUNTRY"] = "ru"
    assert services.default_region() == "RU"
    assert services.normalize_phone("8 916 123-45-67") == "+79161234567"


@pytest.mark.addons("contacts")
def test_phone_region_setting_wins_over_the_firm_country(app):
    app.config["BIRGA_PHONE_REGION"] = "RU"
    app.config["BIRGA_COMPANY_COUNTRY"] = "LV"
    assert services.default_region() == "RU"


@pytest.mark.addons("contacts")
def test_contacts_own_country_reads_its_local_numbers(app):
    app.config.pop("BIRGA_PHONE_REGION", None)
    kazakh = Partner(kind="person", name="Aigerim", country="KZ")
    services.set_phones(kazakh, ["8 701 123 4567"])
    assert kazakh.phone == "+77011234567"
    latvian = Partner(kind="person", name="Anna")
    services.set_phones(latvian, ["29 123 456"])
    assert latvian.phone == "+37129123456"


@pytest.mark.addons("contacts")
def test_the_firm_country_saved_by_the_admin_is_the_default_region(app):
    from core.company import save_details

    app.config.pop("BIRGA_PHONE_REGION", None)
    app.config["BIRGA_COMPANY_COUNTRY"] = "LV"
    save_details({"country": "RO"})
    assert services.normalize_phone("0721 234 567") == "+40721234567"
