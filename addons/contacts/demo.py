"""Demo data for `birga demo` (and so `make run`): a small, believable CRM in our five markets.

Everything goes through the same services as the form and the import (`set_phones`,
`set_emails`, `refresh_search`), so the demo contacts are found and sorted exactly like real
ones. The salespeople it creates own contacts but have no password: they exist to show
owners, filters and record rules; an administrator gives them a password when wanted.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from core.api import User, add_note, db, utcnow
from core.security import assign_roles

from . import services
from .custom_fields import save_values
from .models import CustomField, Partner, Tag

SALESPEOPLE = [
    # login, name, interface language
    ("ilze", "Ilze Kalniņa", "lv"),
    ("andrei", "Andrei Popescu", "ro"),
    ("dmitry", "Дмитрий Соколов", "ru"),
    ("aigerim", "Айгерим Нурланова", "kk"),
    ("bobur", "Bobur Xolmatov", "uz"),
]

#: code, name, country, city, street, tax number, phone, e-mail, owner, status, tags
COMPANIES = [
    ("lv-piens", "Rīgas Piena Kombināts AS", "LV", "Rīga", "Ganību dambis 24", "40003245752",
     "+371 6700 1234", "info@rpk.lv", "ilze", "client", ["Key account"]),
    ("lv-koks", "Latvijas Koks SIA", "LV", "Liepāja", "Ostas iela 8", "",
     "+371 6340 5566", "birojs@lkoks.lv", "ilze", "prospect", []),
    ("ro-transport", "Transport Rapid SRL", "RO", "Cluj-Napoca", "Strada Fabricii 12",
     "18547290", "+40 264 555 010", "office@transportrapid.ro", "andrei", "client",
     ["Key account", "Logistics"]),
    ("md-vin", "Vinăria Codru SRL", "MD", "Chișinău", "Str. Ismail 45", "1008600038413",
     "+373 22 123 456", "vanzari@codru.md", "andrei", "lead", ["Export"]),
    ("kz-astyq", "ТОО «Астық Трейд»", "KZ", "Алматы", "пр. Абая 150", "971240001315",
     "+7 727 250 1234", "info@astyk.kz", "aigerim", "client", ["Key account"]),
    ("uz-paxta", "Paxta Savdo MChJ", "UZ", "Toshkent", "Amir Temur ko'chasi 15", "201234567",
     "+998 71 200 1122", "info@paxtasavdo.uz", "bobur", "prospect", ["Export"]),
    ("ru-sever", "ООО «Северный ветер»", "RU", "Санкт-Петербург", "Невский пр. 28",
     "7707083893", "+7 812 600 1020", "zakaz@sever-veter.ru", "dmitry", "inactive", []),
]

#: company code, first, middle, last, job title, phone, e-mail, language, status
PEOPLE = [
    ("lv-piens", "Jānis", None, "Bērziņš", "Iepirkumu vadītājs", "+371 2000 0001",
     "janis.berzins@rpk.lv", "lv", "client"),
    ("lv-piens", "Līga", None, "Ozoliņa", "Grāmatvede", "+371 2611 2233", "liga@rpk.lv",
     "lv", "client"),
    ("lv-koks", "Andris", None, "Čakste", "Valdes loceklis", "+371 2922 4455",
     "andris@lkoks.lv", "lv", "prospect"),
    ("ro-transport", "Ion", None, "Țurcanu", "Director logistică", "+40 721 234 567",
     "ion.turcanu@transportrapid.ro", "ro", "client"),
    ("ro-transport", "Maria", None, "Popescu", "Contabil șef", "+40 744 111 222",
     "maria@transportrapid.ro", "ro", "client"),
    ("md-vin", "Vasile", None, "Ciobanu", "Manager export", "+373 69 123 456",
     "v.ciobanu@codru.md", "ro", "lead"),
    ("kz-astyq", "Әлия", "Серікқызы", "Қасымова", "Коммерциялық директор",
     "+7 701 234 5678", "aliya@astyk.kz", "kk", "client"),
    ("kz-astyq", "Ерлан", "Маратович", "Ахметов", "Бас бухгалтер", "+7 702 555 1212",
     "erlan@astyk.kz", "ru", "client"),
    ("uz-paxta", "Aziz", None, "Gʻulomov", "Savdo boʻlimi boshligʻi", "+998 90 123 45 67",
     "aziz@paxtasavdo.uz", "uz", "prospect"),
    ("uz-paxta", "Dilnoza", None, "Yoʻldosheva", "Buxgalter", "+998 93 765 43 21",
     "dilnoza@paxtasavdo.uz", "uz", "prospect"),
    ("ru-sever", "Иван", "Сергеевич", "Петров", "Генеральный директор", "+7 916 123-45-67",
     "petrov@sever-veter.ru", "ru", "inactive"),
    (None, "Elena", None, "Rusu", "Consultant", "+40 722 000 333", "elena.rusu@example.ro",
     "ro", "lead"),
]

INDUSTRY = {
    "code": "industry",
    "labels": {"en": "Industry", "lv": "Nozare", "ru": "Отрасль", "uz": "Soha",
               "kk": "Сала", "ro": "Industrie"},
    "choices": [
        {"value": "food", "labels": {"en": "Food", "lv": "Pārtika", "ru": "Продукты питания",
                                     "uz": "Oziq-ovqat", "kk": "Азық-түлік",
                                     "ro": "Alimentar"}},
        {"value": "logistics", "labels": {"en": "Logistics", "lv": "Loģistika",
                                          "ru": "Логистика", "uz": "Logistika",
                                          "kk": "Логистика", "ro": "Logistică"}},
        {"value": "agriculture", "labels": {"en": "Agriculture", "lv": "Lauksaimniecība",
                                            "ru": "Сельское хозяйство", "uz": "Qishloq xoʻjaligi",
                                            "kk": "Ауыл шаруашылығы", "ro": "Agricultură"}},
    ],
}
INDUSTRY_OF = {"lv-piens": "food", "lv-koks": "agriculture", "ro-transport": "logistics",
               "md-vin": "food", "kz-astyq": "agriculture", "uz-paxta": "agriculture",
               "ru-sever": "logistics"}
EMPLOYEES = {"lv-piens": 850, "lv-koks": 40, "ro-transport": 120, "md-vin": 65,
             "kz-astyq": 300, "uz-paxta": 210, "ru-sever": 15}


def _users() -> dict[str, User]:
    users = {}
    for login, name, locale in SALESPEOPLE:
        user = db.session.scalar(select(User).where(User.login == login))
        if user is None:
            user = User(login=login, name=name, locale=locale)
            db.session.add(user)
            db.session.flush()
        users[login] = user
    db.session.commit()
    for user in users.values():
        assign_roles(user, "salesperson")
    return users


def _tags(names: set[str]) -> dict[str, Tag]:
    tags = {}
    for name in sorted(names):
        tag = db.session.scalar(select(Tag).where(Tag.name == name))
        if tag is None:
            tag = Tag(name=name)
            db.session.add(tag)
        tags[name] = tag
    db.session.flush()
    return tags


def _fields() -> dict[str, CustomField]:
    industry = db.session.scalar(select(CustomField).where(CustomField.code == "industry"))
    if industry is None:
        industry = CustomField(kind="choice", applies_to="company", sequence=10,
                               show_in_list=True, **INDUSTRY)
        db.session.add(industry)
    employees = db.session.scalar(select(CustomField).where(CustomField.code == "employees"))
    if employees is None:
        employees = CustomField(
            code="employees", kind="number", applies_to="company", sequence=20,
            labels={"en": "Employees", "lv": "Darbinieki", "ru": "Сотрудников",
                    "uz": "Xodimlar", "kk": "Қызметкерлер", "ro": "Angajați"})
        db.session.add(employees)
    db.session.flush()
    return {"industry": industry, "employees": employees}


def _save(partner: Partner, phone: str, email: str) -> None:
    services.set_phones(partner, [phone])
    services.set_emails(partner, [email])
    services.refresh_search(partner)


def load() -> dict[str, Any]:
    """Create the demo set once (skipped when its companies exist); the caller commits."""
    if db.session.scalar(select(Partner.id).where(Partner.external_id.like("demo:%"))):
        return {"skipped": True}
    users = _users()
    tags = _tags({t for row in COMPANIES for t in row[10]} | {"Newsletter"})
    fields = _fields()
    now = utcnow()
    companies: dict[str, Partner] = {}
    for index, (code, name, country, city, street, vat, phone, email, owner, status,
                tag_names) in enumerate(COMPANIES):
        company = Partner(kind="company", name=name, country=country, city=city,
                          street=street, vat=vat or None, owner_id=users[owner].id,
                          status=status, source="demo", external_id=f"demo:{code}",
                          segment="ABC"[index % 3] if status == "client" else None)
        company.tags = [tags[t] for t in tag_names]
        db.session.add(company)
        _save(company, phone, email)
        save_values(company, {fields["industry"].id: INDUSTRY_OF[code],
                              fields["employees"].id: Decimal(EMPLOYEES[code])},
                    fields.values())
        services.refresh_search(company)
        companies[code] = company
    for index, (code, first, middle, last, job, phone, email, lang, status) in \
            enumerate(PEOPLE):
        company = companies.get(code) if code else None
        owner = company.owner_id if company is not None else users["andrei"].id
        person = Partner(kind="person", first_name=first, middle_name=middle, last_name=last,
                         job_title=job, company=company, lang=lang, status=status,
                         owner_id=owner, country=company.country if company else "RO",
                         city=company.city if company else "București", source="demo",
                         external_id=f"demo:person:{index}")
        if index % 3 == 0:
            person.tags = [tags["Newsletter"]]
        db.session.add(person)
        _save(person, phone, email)
        if index % 2 == 0:
            add_note("contacts.partner", person.id, "Discussed next season's order.",
                     author=db.session.get(User, owner), kind="call")
            person.last_contact_at = now - timedelta(days=3 + index * 9)
        if index % 4 == 1:  # a birthday in the coming days, for the start page
            person.birthday = (now + timedelta(days=1 + index % 5)).date().replace(year=1984)
    db.session.flush()
    _activities(list(companies.values()))
    return {"companies": len(companies), "people": len(PEOPLE)}


#: (days from today, local hour, type code, summary): one overdue and two for today each.
DEMO_ACTIVITIES = ((-2, 10, "call", "Call back about the price list"),
                   (0, 11, "meeting", "Meeting about next season's order"),
                   (0, 16, "email", "Send the signed contract"))


def _activities(companies: list[Partner]) -> None:
    """Overdue and today's activities for every active user (the administrator who opens the
    demo included) on the companies they own, else on any, so the start page has a day."""
    from core.activities import (
        ActivityType,
        activity_types,
        day_bounds,
        now,
        schedule_activity,
        user_timezone,
    )

    if not companies:
        return
    activity_types()
    types = {t.code: t.id for t in db.session.scalars(select(ActivityType))}
    users = list(db.session.scalars(select(User).where(User.active.is_(True)).order_by(User.id)))
    for number, user in enumerate(users):
        own = [c for c in companies if c.owner_id == user.id] or companies
        start = day_bounds(user_timezone(user), now())[0]
        for offset, (days, hour, code, summary) in enumerate(DEMO_ACTIVITIES):
            company = own[(number + offset) % len(own)]
            schedule_activity(type_id=types[code], summary=summary, assignee=user,
                              creator=user, due_at=start + timedelta(days=days, hours=hour),
                              model="contacts.partner", record_id=company.id)
