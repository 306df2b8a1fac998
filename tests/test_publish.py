"""Definitions as published data: publish over HTTP and the CLI (201 / 200 / 409 / 422), who may
publish, the version an account's new tickets get, old tickets staying on theirs, and the
definitions folder published at start."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.cli import main as cli
from api.tokens import TokenStore
from tests.api_client import ADMIN_TOKEN, Api, auth
from tests.conftest import FakeClock
from tests.scenarios import reach
from workflow import DefinitionError, GuardFailed, Tierflow, VersionTaken, parse_text

SUPPORT = resources.files("workflow.definitions").joinpath("support.yaml").read_text()
YAML = {"Content-Type": "application/yaml"}


def variant(version: str, window: int = 1) -> str:
    """The shipped definition under another version, with another reopen window."""
    text = SUPPORT.replace('version: "1.0.0"', f'version: "{version}"', 1)
    assert "reopen_window_days: 7" in text
    return text.replace("reopen_window_days: 7", f"reopen_window_days: {window}", 1)


def reach_resolved(tf: Tierflow) -> int:
    return reach(tf, "resolved").id


def create(tf: Tierflow, account: str) -> int:
    return tf.create_ticket(
        account=account, kind="technical", category="login_password", subject="x", channel="chat"
    ).id


# --- the engine ----------------------------------------------------------------------------
def test_publish_then_new_tickets_get_the_new_version_and_old_ones_keep_theirs(
    tf: Tierflow, clock: FakeClock
) -> None:
    old = reach_resolved(tf)
    p = tf.publish_text(variant("1.1.0"))
    assert (p.name, p.version, p.created) == ("support", "1.1.0", True)
    new = reach_resolved(tf)
    views = {i: tf.get_ticket(account="acme", ticket_id=i) for i in (old, new)}
    assert views[old].workflow_version == "1.0.0"
    assert views[new].workflow_version == "1.1.0"
    assert views[new].definition_hash == p.hash
    clock.advance(days=3)  # past 1.1.0's one-day reopen window, inside 1.0.0's seven
    assert tf.fire(account="acme", ticket_id=old, trigger="reopen", role="customer").state == (
        "l1_solving"
    )
    with pytest.raises(GuardFailed):
        tf.fire(account="acme", ticket_id=new, trigger="reopen", role="customer")
    assert [v.version for v in tf.published("support")] == ["1.1.0", "1.0.0"]
    assert tf.check() == []


def test_published_versions_are_immutable(tf: Tierflow) -> None:
    first = tf.publish_text(variant("1.1.0"))
    again = tf.publish_text(variant("1.1.0"))
    assert (again.hash, again.created) == (first.hash, False)
    with pytest.raises(VersionTaken) as taken:
        tf.publish_text(variant("1.1.0", window=2))
    assert taken.value.detail == (
        f"support 1.1.0 is published already with other content (#{first.hash}); published "
        "versions never change: publish this content under a new version"
    )
    assert [v.version for v in tf.published("support")] == ["1.1.0", "1.0.0"]


def test_republishing_an_older_content_does_not_make_it_the_latest(tf: Tierflow) -> None:
    tf.publish_text(variant("1.1.0"))
    assert tf.publish_text(SUPPORT).created is False
    assert tf.definition("support").version == "1.1.0"


def test_an_account_chooses_the_version_its_new_tickets_get(tf: Tierflow) -> None:
    tf.create_account(slug="globex", name="Globex")
    assert tf.account_workflow(account="acme")[0].version == "1.0.0"
    tf.publish_text(variant("1.1.0"))
    d, chosen = tf.choose_workflow(account="acme", workflow="support", version="1.0.0")
    assert (d.version, chosen) == ("1.0.0", True)
    tf.publish_text(variant("1.2.0"))
    mine = tf.get_ticket(account="acme", ticket_id=create(tf, "acme"))
    theirs = tf.get_ticket(account="globex", ticket_id=create(tf, "globex"))
    assert (mine.workflow_version, theirs.workflow_version) == ("1.0.0", "1.2.0")
    d, chosen = tf.choose_workflow(account="acme", workflow="support", version=None)
    assert (d.version, chosen) == ("1.2.0", False)
    assert tf.get_ticket(account="acme", ticket_id=mine.id).workflow_version == "1.0.0"


def test_another_process_sees_a_publication(db_url: str, clock: FakeClock) -> None:
    a = Tierflow(db_url, clock=clock)
    b = Tierflow(db_url, clock=clock)
    a.publish_text(variant("1.1.0"))
    b.registry._refresh(force=True)  # what REFRESH_SECONDS of waiting does
    assert b.definition("support").version == "1.1.0"
    a.db.dispose()
    b.db.dispose()


def test_concurrent_publishers_store_one_version(db_url: str, clock: FakeClock) -> None:
    """Two engines (as two servers) publish at once: the same content is stored once, and of
    two contents under one version exactly one is stored, the other refused."""
    engines = [Tierflow(db_url, clock=clock) for _ in range(4)]
    texts = [variant("1.1.0"), variant("1.1.0"), variant("1.2.0", 2), variant("1.2.0", 3)]
    barrier = threading.Barrier(len(engines))

    def publish(i: int) -> str:
        barrier.wait(timeout=10)
        try:
            return "created" if engines[i].publish_text(texts[i]).created else "same"
        except VersionTaken:
            return "taken"

    with ThreadPoolExecutor(len(engines)) as pool:
        answers = list(pool.map(publish, range(len(engines))))
    assert sorted(answers[:2]) == ["created", "same"]
    assert sorted(answers[2:]) == ["created", "taken"]
    assert sorted(v.version for v in engines[0].published()) == ["1.0.0", "1.1.0", "1.2.0"]
    seqs = [v.seq for v in engines[0].published()]
    assert len(set(seqs)) == len(seqs)
    for e in engines:
        e.db.dispose()


def test_the_definitions_folder_is_published_at_start(
    db_url: str, clock: FakeClock, tmp_path: Path
) -> None:
    defs = tmp_path / "definitions"
    defs.mkdir()
    (defs / "b.yaml").write_text(variant("2.0.0"))
    (defs / "a.yml").write_text(variant("1.5.0"))
    (defs / "notes.txt").write_text("not a definition")
    tf = Tierflow(db_url, clock=clock, definitions_dir=defs)
    assert [v.version for v in tf.published("support")] == ["2.0.0", "1.5.0", "1.0.0"]
    assert tf.start_warnings == []
    tf.db.dispose()
    # the same files again: nothing new; a changed file under a published version: a warning
    (defs / "a.yml").write_text(variant("1.5.0", window=3))
    tf = Tierflow(db_url, clock=clock, definitions_dir=defs)
    assert [v.version for v in tf.published("support")] == ["2.0.0", "1.5.0", "1.0.0"]
    (warning,) = tf.start_warnings
    assert warning.startswith(f"support 1.5.0 from {defs / 'a.yml'} not published: support 1.5.0")
    tf.db.dispose()
    (defs / "c.yaml").write_text(variant("3.0.0").replace("initial: new", "initial: nowhere"))
    with pytest.raises(DefinitionError) as broken:
        Tierflow(db_url, clock=clock, definitions_dir=defs)
    assert broken.value.source == str(defs / "c.yaml")


# --- HTTP ----------------------------------------------------------------------------------


@pytest.fixture
def designer(engine: Tierflow) -> dict[str, str]:
    _id, token = TokenStore(engine, ADMIN_TOKEN).issue_platform(role="designer", name="Dana")
    return auth(token)


def test_publish_answers_201_200_409_422(client: TestClient, designer: dict[str, str]) -> None:
    url = "/v1/workflows/support/versions"
    table = [
        (variant("1.1.0"), 201),
        (variant("1.1.0"), 200),  # the same content again: the same answer
        (variant("1.1.0", window=2), 409),  # another content under a published version
        (SUPPORT, 200),  # the shipped 1.0.0, published at start
        (variant("1.1.0").replace("initial: new", "initial: nowhere"), 422),
    ]
    answers = []
    for text, expected in table:
        r = client.post(url, content=text, headers={**designer, **YAML})
        assert r.status_code == expected, r.text
        answers.append(r.json())
    assert answers[0] == answers[1]
    assert answers[0]["name"] == "support" and answers[0]["version"] == "1.1.0"
    assert answers[0]["hash"] == parse_text(variant("1.1.0")).hash
    assert answers[2]["type"] == "/problems/version-taken"
    assert answers[2]["hash"] == answers[0]["hash"]
    assert answers[4]["type"] == "/problems/invalid-definition"
    (error,) = answers[4]["errors"]
    line = variant("1.1.0").splitlines().index("initial: new") + 1
    assert (error["line"], error["column"], error["path"]) == (line, 10, "initial")
    assert error["message"].startswith("unknown state 'nowhere' (known: ")
    listed = client.get("/v1/workflows/support", headers=designer).json()
    assert [v["version"] for v in listed["versions"]] == ["1.1.0", "1.0.0"]


def test_publish_refuses_another_name_and_other_media(
    client: TestClient, designer: dict[str, str]
) -> None:
    r = client.post("/v1/workflows/sales/versions", content=SUPPORT, headers={**designer, **YAML})
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [
        {
            "line": 3,
            "column": 7,
            "path": "name",
            "message": "'support' is not 'sales', the workflow published to",
        }
    ]
    r = client.post("/v1/workflows/support/versions", json={"yaml": SUPPORT}, headers=designer)
    assert r.status_code == 415, r.text
    assert r.headers["content-type"] == "application/problem+json"
    r = client.post(
        "/v1/workflows/support/versions", content=b"\xff\xfe", headers={**designer, **YAML}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["message"] == "not UTF-8 text (byte 0)"


def test_validate_answers_the_verdict_and_stores_nothing(
    client: TestClient, acme: Api, engine: Tierflow
) -> None:
    url = "/v1/workflows/validate"
    headers = {**acme.as_("customer"), **YAML}
    r = client.post(url, content=variant("1.1.0"), headers=headers)
    assert (r.status_code, r.json()["publish"], r.json()["version"]) == (200, "new", "1.1.0")
    r = client.post(url, content=SUPPORT, headers=headers)
    assert (r.status_code, r.json()["publish"]) == (200, "already published")
    r = client.post(url, content=SUPPORT.replace("reopen_window_days: 7", "reopen_window_days: 2"))
    assert r.status_code == 401
    r = client.post(
        url,
        content=SUPPORT.replace("reopen_window_days: 7", "reopen_window_days: 2"),
        headers=headers,
    )
    assert (r.status_code, r.json()["type"]) == (409, "/problems/version-taken")
    assert [v.version for v in engine.published()] == ["1.0.0"]


DESIGNER_TABLE = [
    # (who, method, path, body, expected status)
    ("designer", "POST", "/v1/workflows/support/versions", "yaml", 201),
    ("admin", "POST", "/v1/workflows/support/versions", "yaml", 201),
    ("supervisor", "POST", "/v1/workflows/support/versions", "yaml", 403),
    ("customer", "POST", "/v1/workflows/support/versions", "yaml", 403),
    ("designer", "POST", "/v1/workflows/validate", "yaml", 200),
    ("l1_agent", "POST", "/v1/workflows/validate", "yaml", 200),
    ("designer", "GET", "/v1/workflows/support", None, 200),
    ("designer", "PUT", "/v1/accounts/acme/workflow", "choice", 200),
    ("admin", "PUT", "/v1/accounts/acme/workflow", "choice", 200),
    ("supervisor", "PUT", "/v1/accounts/acme/workflow", "choice", 200),
    ("l1_agent", "PUT", "/v1/accounts/acme/workflow", "choice", 403),
    ("designer", "GET", "/v1/accounts/acme/workflow", None, 200),
    ("customer", "GET", "/v1/accounts/acme/workflow", None, 200),
    ("designer", "GET", "/v1/accounts/nope/workflow", None, 404),
    # a designer is no account's member: tickets, tokens and accounts stay closed
    ("designer", "GET", "/v1/accounts/acme/tickets", None, 404),
    ("designer", "POST", "/v1/accounts/acme/tokens", "token", 404),
    ("designer", "POST", "/v1/accounts", "account", 403),
    # only the admin issues designer tokens
    ("admin", "POST", "/v1/tokens", "designer", 201),
    ("designer", "POST", "/v1/tokens", "designer", 403),
    ("supervisor", "POST", "/v1/tokens", "designer", 403),
]


@pytest.mark.parametrize(
    ("who", "method", "path", "body", "expected"),
    DESIGNER_TABLE,
    ids=[f"{w} {m} {p}" for w, m, p, _b, _e in DESIGNER_TABLE],
)
def test_who_may_publish_and_choose(
    acme: Api,
    designer: dict[str, str],
    who: str,
    method: str,
    path: str,
    body: str | None,
    expected: int,
) -> None:
    headers = designer if who == "designer" else acme.as_(who)
    kwargs: dict[str, Any] = {}
    if body == "yaml":
        kwargs = {"content": variant("1.1.0"), "headers": {**headers, **YAML}}
    else:
        payload = {
            "choice": {"name": "support", "version": "1.0.0"},
            "token": {"role": "l1_agent", "name": "x"},
            "account": {"slug": "initech", "name": "Initech"},
            "designer": {"role": "designer", "name": "Dana"},
        }.get(body or "")
        kwargs = {"json": payload, "headers": headers} if payload else {"headers": headers}
    r = acme.client.request(method, path, **kwargs)
    assert r.status_code == expected, r.text
    if expected == 403:
        allowed = {
            "/v1/workflows/support/versions": ["admin", "designer"],
            "/v1/accounts/acme/workflow": ["admin", "designer", "supervisor"],
            "/v1/accounts": ["admin"],
            "/v1/tokens": ["admin"],
        }
        assert r.json()["allowed"] == allowed[path]
    if path == "/v1/tokens" and expected == 201:  # the new token publishes
        token = r.json()["token"]
        assert (r.json()["role"], r.json()["user"]) == ("designer", None)
        r = acme.client.post(
            "/v1/workflows/support/versions",
            content=variant("1.1.0"),
            headers={**auth(token), **YAML},
        )
        assert r.status_code == 201, r.text


def test_the_account_version_over_http(acme: Api, designer: dict[str, str]) -> None:
    c = acme.client
    url = acme.url("/workflow")
    assert c.get(url, headers=acme.as_("l1_agent")).json() == {
        "name": "support",
        "version": "1.0.0",
        "hash": parse_text(SUPPORT).hash,
        "chosen": False,
    }
    r = c.post(
        "/v1/workflows/support/versions", content=variant("1.1.0"), headers={**designer, **YAML}
    )
    assert r.status_code == 201
    old = acme.create()
    assert old["workflow"]["version"] == "1.1.0"
    r = c.put(url, json={"name": "support", "version": "1.0.0"}, headers=designer)
    assert (r.status_code, r.json()["version"], r.json()["chosen"]) == (200, "1.0.0", True)
    assert acme.create()["workflow"]["version"] == "1.0.0"
    assert (
        c.get(acme.url(f"/tickets/{old['id']}"), headers=acme.as_("l1_agent")).json()["workflow"][
            "version"
        ]
        == "1.1.0"
    )
    r = c.put(url, json={"name": "support", "version": "9.9.9"}, headers=designer)
    assert (r.status_code, r.json()["detail"]) == (
        422,
        "version: workflow version 'support@9.9.9' not found",
    )
    r = c.put(url, json={"name": "support", "version": None}, headers=designer)
    assert (r.json()["version"], r.json()["chosen"]) == ("1.1.0", False)


# --- the command line ----------------------------------------------------------------------
def test_cli_publish_validate_list(
    db_url: str, clock: FakeClock, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Tierflow(db_url, clock=clock).db.dispose()
    new = tmp_path / "support-1.1.yaml"
    new.write_text(variant("1.1.0"))
    taken = tmp_path / "taken.yaml"
    taken.write_text(variant("1.1.0", window=3))
    h = parse_text(variant("1.1.0")).hash
    base = ["--database-url", db_url, "workflows"]

    assert cli([*base, "validate", str(new)]) == 0
    assert capsys.readouterr().out == f"{new}: ok (support 1.1.0 #{h}); publishing it stores it\n"
    assert cli([*base, "publish", str(new)]) == 0
    assert capsys.readouterr().out == f"{new}: published: support 1.1.0 #{h}\n"
    assert cli([*base, "publish", str(new)]) == 0
    assert capsys.readouterr().out == f"{new}: already published: support 1.1.0 #{h}\n"
    assert cli([*base, "validate", str(new)]) == 0
    assert capsys.readouterr().out == f"{new}: ok (support 1.1.0 #{h}); published already\n"
    assert cli([*base, "publish", str(taken)]) == 1
    assert capsys.readouterr().err.startswith(
        f"{taken}: support 1.1.0 is published already with other content (#{h})"
    )
    assert cli([*base, "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[:3] for line in lines] == [
        ["support", "1.1.0", f"#{h}"],
        ["support", "1.0.0", f"#{parse_text(SUPPORT).hash}"],
    ]
    assert lines[0].endswith("(latest)") and not lines[1].endswith("(latest)")
    assert cli([*base, "list", "sales"]) == 1
    assert capsys.readouterr().err == "tierflow workflows: no published version of 'sales'\n"


def test_cli_issues_a_designer_token(
    db_url: str, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    tf = Tierflow(db_url, clock=clock)
    assert cli(["--database-url", db_url, "tokens", "create", "--role", "designer"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith(
        "for the platform as designer (designer (tierflow tokens create)); shown once:"
    )
    principal = TokenStore(tf, ADMIN_TOKEN).resolve(out[1])
    assert principal is not None and principal.is_designer and principal.account is None
    assert cli(["--database-url", db_url, "tokens", "create", "--role", "l1_agent"]) == 1
    assert "--account is needed for role 'l1_agent'" in capsys.readouterr().err
    tf.db.dispose()


def test_the_validate_route_is_its_own_resource(acme: Api) -> None:
    """`/v1/workflows/validate` also matches `/v1/workflows/{name}`; its 405 names only POST."""
    r = acme.client.request("OPTIONS", "/v1/workflows/validate", headers=acme.as_("admin"))
    assert (r.status_code, r.headers["allow"]) == (405, "POST")
    r = acme.client.request("DELETE", "/v1/workflows/support", headers=acme.as_("admin"))
    assert (r.status_code, r.headers["allow"]) == (405, "GET")


def test_serve_refuses_to_start_on_an_invalid_definition_in_the_folder(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    defs = tmp_path / "definitions"
    defs.mkdir()
    broken = defs / "support-2.yaml"
    broken.write_text(variant("2.0.0").replace("initial: new", "initial: nowhere"))
    monkeypatch.setenv("TIERFLOW_DEFINITIONS_DIR", str(defs))
    monkeypatch.setenv("TIERFLOW_DATABASE_URL", db_url)  # serve sets it; monkeypatch restores
    assert cli(["serve"]) == 1  # before uvicorn: nothing listens
    line = broken.read_text().splitlines().index("initial: nowhere") + 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"{broken}:{line}:10: initial: unknown state 'nowhere' (known: ")
    assert err[-1] == "tierflow: not started: a definition to publish at start is invalid"


def test_the_admin_lists_and_revokes_designer_tokens(acme: Api) -> None:
    c, admin = acme.client, acme.as_("admin")
    r = c.post("/v1/tokens", json={"role": "designer", "name": "Dana"}, headers=admin)
    assert r.status_code == 201, r.text
    token_id, dana = r.json()["id"], auth(r.json()["token"])
    assert c.get("/v1/workflows", headers=dana).status_code == 200
    listed = c.get("/v1/tokens", headers=admin).json()
    assert [(t["id"], t["role"], t["name"], t["revoked_at"]) for t in listed] == [
        (token_id, "designer", "Dana", None)
    ]
    assert c.get("/v1/tokens", headers=dana).status_code == 403
    assert c.delete(f"/v1/tokens/{token_id}", headers=dana).status_code == 403
    # an account's token is no platform token: not found here (ids are numbers per account,
    # the platform's among themselves: the account's last has a number no platform token has)
    account_token = c.get(acme.url("/tokens"), headers=admin).json()[-1]
    assert account_token["id"] > token_id
    assert c.delete(f"/v1/tokens/{account_token['id']}", headers=admin).status_code == 404
    assert c.get(acme.url("/tokens"), headers=admin).json()[-1]["revoked_at"] is None
    assert c.delete(f"/v1/tokens/{token_id}", headers=admin).status_code == 204
    assert c.get("/v1/workflows", headers=dana).status_code == 401
    assert c.get("/v1/tokens", headers=admin).json()[0]["revoked_at"] is not None


def test_cli_lists_and_revokes_designer_tokens(
    db_url: str, clock: FakeClock, capsys: pytest.CaptureFixture[str]
) -> None:
    tf = Tierflow(db_url, clock=clock)
    base = ["--database-url", db_url, "tokens"]
    assert cli([*base, "create", "--role", "designer", "--name", "Dana"]) == 0
    token_id = int(capsys.readouterr().out.split()[1])
    assert cli([*base, "list"]) == 0
    assert capsys.readouterr().out == f"{token_id}\tdesigner\tplatform Dana\tactive\n"
    assert cli([*base, "revoke", "--id", str(token_id)]) == 0
    assert capsys.readouterr().out == (
        f"token {token_id} of the platform revoked; every server refuses it within a second\n"
    )
    assert cli([*base, "list"]) == 0
    assert "\trevoked " in capsys.readouterr().out
    tf.db.dispose()
