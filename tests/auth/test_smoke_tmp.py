import httpx

from tests.auth.conftest import bearer, token


def test_flow(secured: httpx.Client, service_key: str) -> None:
    r = secured.get("/chats/")
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"
    ann, bob = bearer(token("ann")), bearer(token("bob"))
    chat = secured.post("/chats/", json={"title": "t"}, headers=ann)
    assert chat.status_code == 201, chat.text
    cid = chat.json()["id"]
    m = secured.post(f"/chats/{cid}/messages/", json={"text": "hi"}, headers=ann)
    assert m.status_code == 201, m.text
    assert m.json()["author"] == "ann"
    assert secured.get(f"/chats/{cid}", headers=ann).json()["messages"][0]["author"] == "ann"
    missing = secured.get(f"/chats/{cid + 1000}", headers=ann)
    hidden = secured.get(f"/chats/{cid}", headers=bob)
    assert hidden.status_code == 404
    print(missing.content, hidden.content)
    assert secured.get("/chats/", headers=bob).json()["chats"] == []
    assert len(secured.get("/chats/", headers=ann).json()["chats"]) == 1
    p = secured.put(f"/chats/{cid}/members/bob", json={"role": "member"}, headers=ann)
    assert p.status_code == 201, p.text
    assert secured.get(f"/chats/{cid}", headers=bob).status_code == 200
    assert secured.delete(f"/chats/{cid}", headers=bob).status_code == 403
    assert secured.delete(f"/chats/{cid}/members/ann", headers=ann).status_code == 409
    members = secured.get(f"/chats/{cid}/members/", headers=bob)
    assert [m["user_id"] for m in members.json()["members"]] == ["ann", "bob"], members.text
    t = secured.post(f"/chats/{cid}/events/tickets", headers=bob)
    assert t.status_code == 201, t.text
    svc = bearer(service_key)
    assert secured.get(f"/chats/{cid}", headers=svc).status_code == 200
    s = secured.post(f"/chats/{cid}/messages/", json={"text": "x", "author": "carl"}, headers=svc)
    assert s.json()["author"] == "carl"
    bad = secured.post(f"/chats/{cid}/messages/", json={"text": "x", "author": "carl"}, headers=bob)
    assert bad.status_code == 422
    assert secured.delete(f"/chats/{cid}/members/bob", headers=bob).status_code == 204
    assert secured.get(f"/chats/{cid}", headers=bob).status_code == 404
    assert secured.delete(f"/chats/{cid}", headers=ann).status_code == 204
