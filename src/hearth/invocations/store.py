"""Invocations in the state database (table `invocations`, schema step `_invocations`).

Every change is one transaction. `add` commits before the gateway answers 202, so an
accepted invocation outlives any crash of the daemon (SIGKILL included: a committed WAL
frame is the operating system's once written). A claim counts the attempt as it begins;
`recover` at start puts back what was running when a daemon stopped.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from hearth.invocations.model import STATUSES, Invocation, Request, Result, Status

SWEEP_BATCH = 1000  # rows removed per statement: a long sweep never holds the loop long
_SHOWN = (
    "id, function, status, method, url, request_id, attempts, created, updated, next_try, "
    "last_error, callback, callback_state, result_status"
)


class InvocationStore:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    # accepting and claiming

    def add(self, request: Request) -> None:
        """A newly accepted invocation, due at once."""
        with self.db:
            self.db.execute(
                "insert into invocations (id, function, status, method, url, headers, body, "
                "request_id, callback, attempts, created, updated, next_try) "
                "values (?, ?, 'queued', ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
                (
                    request.id,
                    request.function,
                    request.method,
                    request.url,
                    json.dumps(request.headers),
                    request.body,
                    request.request_id,
                    request.callback,
                    request.created,
                    request.created,
                    request.created,
                ),
            )

    def due(self) -> dict[str, float]:
        """Each function with queued invocations, and when its first is due (a scan of the
        queue: the worker asks once, at start, and keeps it up to date)."""
        rows = self.db.execute(
            "select function, min(next_try) from invocations where status = 'queued' "
            "group by function"
        )
        return {function: float(first) for function, first in rows}

    def first_due(self, function: str) -> float | None:
        """When the function's first queued invocation is due; None: it has none."""
        (first,) = self.db.execute(
            "select min(next_try) from invocations where status = 'queued' and function = ?",
            (function,),
        ).fetchone()
        return None if first is None else float(first)

    def claim(self, function: str, limit: int, now: float) -> list[Request]:
        """Up to `limit` of the function's invocations due by `now`, oldest first, marked
        running with one more attempt counted."""
        with self.db:
            self.db.execute("begin immediate")
            rows = self.db.execute(
                "select id, method, url, headers, body, request_id, attempts, created, callback "
                "from invocations where status = 'queued' and function = ? and next_try <= ? "
                "order by next_try, rowid limit ?",
                (function, now, limit),
            ).fetchall()
            self.db.executemany(
                "update invocations set status = 'running', attempts = attempts + 1, "
                "updated = ?, next_try = null where id = ?",
                [(now, row[0]) for row in rows],
            )
        return [
            Request(
                id=i,
                function=function,
                method=method,
                url=url,
                headers=[(n, v) for n, v in json.loads(headers)],
                body=bytes(body),
                request_id=request_id,
                attempts=attempts + 1,
                created=created,
                callback=callback,
            )
            for i, method, url, headers, body, request_id, attempts, created, callback in rows
        ]

    # outcomes

    def requeue(self, invocation: str, next_try: float, error: str, now: float) -> bool:
        """A failed attempt with attempts left: due again at `next_try`."""
        with self.db:
            cursor = self.db.execute(
                "update invocations set status = 'queued', next_try = ?, last_error = ?, "
                "updated = ? where id = ? and status = 'running'",
                (next_try, error, now, invocation),
            )
        return cursor.rowcount > 0

    def finish(
        self,
        invocation: str,
        status: Status,
        result: Result | None,
        error: str | None,
        expires: float,
        now: float,
    ) -> bool:
        """Done or failed (a dead letter), with the last answer if there was one; kept
        until `expires`. A callback, if asked for, becomes due. False: the invocation is
        gone (its function was removed meanwhile)."""
        with self.db:
            cursor = self.db.execute(
                "update invocations set status = ?, last_error = ?, updated = ?, "
                "expires = ?, next_try = null, result_status = ?, result_headers = ?, "
                "result_body = ?, result_truncated = ?, "
                "callback_state = case when callback is null then null else 'pending' end "
                "where id = ? and status = 'running'",
                (
                    status,
                    error,
                    now,
                    expires,
                    result.status if result else None,
                    json.dumps(result.headers) if result else None,
                    result.body if result else None,
                    int(result.truncated) if result else 0,
                    invocation,
                ),
            )
        return cursor.rowcount > 0

    def retry(self, invocation: str, now: float) -> bool:
        """A failed invocation queued again with its retries afresh; False if it is not
        failed. Its last error stays until an attempt says otherwise."""
        with self.db:
            cursor = self.db.execute(
                "update invocations set status = 'queued', attempts = 0, next_try = ?, "
                "updated = ?, expires = null, result_status = null, result_headers = null, "
                "result_body = null, result_truncated = 0, callback_state = null "
                "where id = ? and status = 'failed'",
                (now, now, invocation),
            )
        return cursor.rowcount > 0

    def recover(self, now: float) -> int:
        """At start: what was running when the last daemon stopped is queued again, due at
        once (its attempt stays counted: it began, and may have done its work)."""
        with self.db:
            cursor = self.db.execute(
                "update invocations set status = 'queued', next_try = ?, updated = ?, "
                "last_error = 'interrupted: the daemon stopped during the attempt' "
                "where status = 'running'",
                (now, now),
            )
        return cursor.rowcount

    def sweep(self, now: float) -> int:
        """Remove finished invocations kept past their time; how many went."""
        removed = 0
        while True:
            with self.db:
                cursor = self.db.execute(
                    "delete from invocations where rowid in (select rowid from invocations "
                    "where expires is not null and expires < ? limit ?)",
                    (now, SWEEP_BATCH),
                )
            removed += cursor.rowcount
            if cursor.rowcount < SWEEP_BATCH:
                return removed

    # callbacks

    def pending_callbacks(self) -> list[str]:
        rows = self.db.execute(
            "select id from invocations where callback_state = 'pending' order by updated"
        )
        return [i for (i,) in rows]

    def callback_done(self, invocation: str, state: str) -> None:
        """A callback delivered or given up on."""
        with self.db:
            self.db.execute(
                "update invocations set callback_state = ? where id = ? and "
                "callback_state = 'pending'",
                (state, invocation),
            )

    # reading

    def get(self, invocation: str) -> Invocation | None:
        row = self.db.execute(
            f"select {_SHOWN}, result_headers, result_body, result_truncated "
            "from invocations where id = ?",
            (invocation,),
        ).fetchone()
        if row is None:
            return None
        *shown, headers, body, truncated = row
        result = None
        if shown[-1] is not None and body is not None:
            pairs = [(n, v) for n, v in json.loads(headers or "[]")]
            result = Result(shown[-1], pairs, bytes(body), bool(truncated))
        return _invocation(shown, result)

    def listing(self, function: str, status: Status | None, limit: int) -> list[Invocation]:
        """The function's invocations, newest first, without results."""
        where, values = "function = ?", [function]
        if status is not None:
            where += " and status = ?"
            values.append(status)
        rows = self.db.execute(
            f"select {_SHOWN} from invocations where {where} order by created desc, rowid desc "
            "limit ?",
            (*values, limit),
        )
        return [_invocation(row, None) for row in rows]

    def counts(self, function: str) -> dict[str, int]:
        """The function's invocations by status (each a count over the queue's index)."""
        return {
            status: int(
                self.db.execute(
                    "select count(*) from invocations where status = ? and function = ?",
                    (status, function),
                ).fetchone()[0]
            )
            for status in STATUSES
        }

    def function_of(self, invocation: str) -> str | None:
        row = self.db.execute(
            "select function from invocations where id = ?", (invocation,)
        ).fetchone()
        return None if row is None else str(row[0])


def _invocation(row: Any, result: Result | None) -> Invocation:
    """A row of the `_SHOWN` columns."""
    (i, function, status, method, url, request_id, attempts, created, updated) = row[:9]
    next_try, last_error, callback, callback_state, result_status = row[9:]
    return Invocation(
        id=i,
        function=function,
        status=status,
        method=method,
        url=url,
        request_id=request_id,
        attempts=attempts,
        created=created,
        updated=updated,
        next_try=next_try,
        last_error=last_error,
        callback=callback,
        callback_state=callback_state,
        result_status=result_status,
        result=result,
    )
