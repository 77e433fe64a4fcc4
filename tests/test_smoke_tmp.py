def test_login_flow(app, client, make_user, login):
    admin = make_user("admin", is_admin=True)
    r = client.get("/")
    assert r.status_code == 302
    r = client.get("/login", headers={"Accept-Language": "lv"})
    assert r.status_code == 200, r.get_data(as_text=True)
    r = login(client, admin)
    assert r.status_code == 302, r.get_data(as_text=True)
    r = client.get("/")
    assert r.status_code == 200, r.get_data(as_text=True)
    r = client.get("/admin/addons")
    assert r.status_code == 200, r.get_data(as_text=True)
    print(r.get_data(as_text=True)[:3000])
