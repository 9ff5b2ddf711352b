import asyncio

from hearth.store import Store
from hearth.supervisor.logs import LineReader, LogBook


def test_versions_traffic_and_failed_first_deploy(tmp_path):
    store = Store(tmp_path / "hearth.db")
    one = store.new_version("fn", "sha1", "base", {"name": "fn"})
    store.set_traffic("fn", {one: 100})
    two = store.new_version("fn", "sha2", "base", {"name": "fn"})
    assert (one, two) == (1, 2)
    store.fail_version("fn", two, "boom")
    assert store.active_version("fn") == one  # a failed version changes nothing that serves
    assert [v.status for v in store.versions("fn")] == ["ready", "failed"]
    store.set_traffic("fn", {one: 30, two: 70})
    assert store.traffic("fn") == {1: 30, 2: 70}
    assert store.active_version("fn") == two
    first = store.new_version("fresh", "sha3", "base", {"name": "fresh"})
    store.fail_version("fresh", first, "no")
    assert not store.exists("fresh")  # a first deploy that failed leaves no function
    store.close()


def test_state_survives_reopening(tmp_path):
    store = Store(tmp_path / "hearth.db")
    n = store.new_version("fn", "sha1", "base", {"name": "fn"})
    store.set_traffic("fn", {n: 100})
    store.event("fn", "deploy", "v1 serving")
    store.set_file_token("secret")
    store.close()
    again = Store(tmp_path / "hearth.db")
    assert again.traffic("fn") == {1: 100}
    assert [e["kind"] for e in again.events("fn")] == ["deploy"]
    assert again.token_scope("secret") == "admin" and again.token_scope("guess") is None
    again.remove("fn")
    assert not again.exists("fn") and again.events("fn") == []
    again.close()


def test_referenced_bundles_and_envs(tmp_path):
    store = Store(tmp_path / "hearth.db")
    one = store.new_version("fn", "sha1", "base", {"name": "fn"})
    store.set_traffic("fn", {one: 100})
    two = store.new_version("fn", "sha2", "py311-abc", {"name": "fn"})
    store.fail_version("fn", two, "boom")  # still listed in the function's history
    store.new_version("other", "sha3", "py311-def", {"name": "other"})  # deploying
    lost = store.new_version("lost", "sha4", "py311-ghi", {"name": "lost"})
    store.fail_version("lost", lost, "never served")  # the function is gone with it
    assert store.referenced() == ({"sha1", "sha2", "sha3"}, {"base", "py311-abc", "py311-def"})
    store.remove("fn")
    assert store.referenced() == ({"sha3"}, {"py311-def"})
    store.close()


def test_events_after_id(tmp_path):
    store = Store(tmp_path / "hearth.db")
    for n in range(5):
        store.event("fn", "tick", str(n))
    first = store.events("fn", limit=2)
    assert [e["message"] for e in first] == ["3", "4"]
    assert [e["message"] for e in store.events("fn", after=first[0]["id"])] == ["4"]
    store.close()


def test_log_lines_rotate(tmp_path):
    book = LogBook(tmp_path, max_bytes=200, keep=2)
    for n in range(40):
        book.write("fn", "fn@1#1", f"line {n}")
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["fn.log", "fn.log.1", "fn.log.2"]
    assert "line 39" in book.tail("fn", 1)[0]
    assert "fn@1#1" in book.tail("fn", 1)[0]
    book.forget("fn")
    assert list(tmp_path.iterdir()) == []


async def test_followers_get_new_lines_split_at_newlines(tmp_path):
    book = LogBook(tmp_path)
    queue = book.follow("fn")
    reader = LineReader(book, "fn", "fn@1#1")
    reader.data_received(b"hello\nwor")
    reader.data_received(b"ld\n")
    lines = [await asyncio.wait_for(queue.get(), 1) for _ in range(2)]
    assert [line.split(" ", 2)[2] for line in lines] == ["hello\n", "world\n"]
    book.unfollow("fn", queue)
    book.close()


def test_tokens_are_kept_hashed_with_id_name_and_scope(tmp_path):
    store = Store(tmp_path / "hearth.db")
    store.set_file_token("file-token")
    made = store.add_token("deploy-token", "ci", "deploy:fn")
    assert len(made["id"]) == 8 and made["id"].isalnum()
    assert store.token_scope("deploy-token") == "deploy:fn"
    assert store.token_scope("file-token") == "admin"
    listed = {t["id"]: (t["name"], t["scope"]) for t in store.tokens()}
    assert listed == {"file": ("token file", "admin"), made["id"]: ("ci", "deploy:fn")}
    store.set_file_token("new-file-token")  # the file changed: the old one is gone
    assert store.token_scope("file-token") is None
    assert store.token_scope("new-file-token") == "admin"
    assert store.revoke_token(made["id"]) and not store.revoke_token(made["id"])
    assert store.token_scope("deploy-token") is None
    store.close()
    assert b"deploy-token" not in (tmp_path / "hearth.db").read_bytes()


def test_a_token_table_from_before_scopes_is_replaced(tmp_path):
    import sqlite3

    old = sqlite3.connect(tmp_path / "hearth.db")
    old.execute("create table tokens (hash text primary key, name text not null, created real)")
    old.execute("insert into tokens values ('abc', 'admin', 0)")
    old.commit()
    old.close()
    store = Store(tmp_path / "hearth.db")
    assert store.tokens() == []
    store.set_file_token("t")
    assert store.token_scope("t") == "admin"
    store.close()


def test_keys_belong_to_one_function_and_go_with_it(tmp_path):
    store = Store(tmp_path / "hearth.db")
    n = store.new_version("fn", "sha1", "base", {"name": "fn"})
    store.set_traffic("fn", {n: 100})
    one = store.add_key("fn", "key-one")
    store.add_key("other", "key-two")
    assert [k["id"] for k in store.keys("fn")] == [one["id"]]
    assert len(store.key_hashes("fn")) == 1
    assert not store.revoke_key("other", one["id"])  # another function's id
    store.put_secret("fn", "A", b"n" * 12, b"sealed")
    store.remove("fn")
    assert store.keys("fn") == [] and store.secret_names("fn") == []
    assert len(store.keys("other")) == 1
    store.close()


def test_identities_are_allocated_once_and_kept_after_removal(tmp_path):
    from hearth.store import Store

    store = Store(tmp_path / "hearth.db")
    first, second = store.identity("a"), store.identity("b")
    assert (first, second) == (1, 2)
    assert store.identity("a") == 1  # stable
    store.remove("a")
    assert store.identity("a") == 1  # created again: owns its files again
    assert store.identity("c") == 3  # numbers are never reused
    store.close()
    assert Store(tmp_path / "hearth.db").identity("b") == 2  # across restarts
