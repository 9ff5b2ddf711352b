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
    store.add_token("secret", "admin")
    store.close()
    again = Store(tmp_path / "hearth.db")
    assert again.traffic("fn") == {1: 100}
    assert [e["kind"] for e in again.events("fn")] == ["deploy"]
    assert again.token_valid("secret") and not again.token_valid("guess")
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
