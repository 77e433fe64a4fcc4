"""Small kernel page details a UI review caught: the favicon and the dashboard's date."""
from __future__ import annotations


def test_favicon_is_linked_and_answers_at_the_root(make_app, make_user, login) -> None:
    app = make_app([])
    client = app.test_client()
    assert 'rel="icon" href="/static/favicon.svg"' in client.get("/login").get_data(True)
    old_style = client.get("/favicon.ico")
    assert old_style.status_code == 301
    assert old_style.headers["Location"].endswith("/static/favicon.svg")
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.mimetype == "image/svg+xml"
    icon.close()


def test_dashboard_date_ends_in_one_full_stop(make_app, make_user, login) -> None:
    app = make_app([])
    with app.app_context():
        user = make_user("ivan", locale="ru")
        client = app.test_client()
        login(client, user)
        html = client.get("/").get_data(as_text=True)
    assert "Сегодня" in html and "г.</p>" in html and "г..</p>" not in html
