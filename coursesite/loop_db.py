"""PostgreSQL from the event loop itself, for the statements every demo run makes.

Django's ORM is synchronous, so async code reaches it through a thread: a hop
there and back per call, a health-check query before it, and a thread that
then competes with the event loop for the GIL. Under a burst of a thousand
readers that was most of the web process's time, and the loop's lag became
the readers' delay (docs/benchmark-notes.md). The statements a websocket makes
for each run (create its record, end it) go through psycopg's async API on
the loop instead.

A few connections per event loop (Daphne runs one loop; tests run one per
test), opened on demand with Django's own database settings. psycopg_pool
would do the pooling, but after losing the server it reconnects on a backoff
of seconds to minutes; here a broken connection is dropped and the next
statement connects again, so runs are recorded again the moment PostgreSQL is
back.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import psycopg

CONNECTIONS_PER_LOOP = 4
CONNECT_TIMEOUT_S = 2
# Waiting longer than this for a free connection means the database is not keeping up.
ACQUIRE_TIMEOUT_S = 5


Item = TypeVar("Item")
Result = TypeVar("Result")


class DatabaseUnavailable(Exception):
    """PostgreSQL could not be reached (or did not answer in time); nothing was written."""


class LoopConnections:
    def __init__(self, params: dict[str, Any]) -> None:
        self.params = params
        self.idle: list[psycopg.AsyncConnection] = []
        self.slots = asyncio.Semaphore(CONNECTIONS_PER_LOOP)

    async def fetch_all(self, sql: str, params: Any) -> list[tuple]:
        """Run one statement in its own transaction; the rows it returns, if any."""
        try:
            async with asyncio.timeout(ACQUIRE_TIMEOUT_S):
                await self.slots.acquire()
        except TimeoutError:
            raise DatabaseUnavailable("no database connection came free in time") from None
        try:
            # An idle connection may have died with a server restart: then one more try on a new one.
            while self.idle:
                try:
                    return await self._run(self.idle.pop(), sql, params)
                except psycopg.OperationalError:
                    continue
            try:
                connection = await psycopg.AsyncConnection.connect(
                    **self.params, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
            except psycopg.OperationalError as error:
                raise DatabaseUnavailable(str(error)) from error
            try:
                return await self._run(connection, sql, params)
            except psycopg.OperationalError as error:
                raise DatabaseUnavailable(str(error)) from error
        finally:
            self.slots.release()

    async def _run(self, connection: psycopg.AsyncConnection, sql: str, params: Any) -> list[tuple]:
        """The statement on `connection`, which goes back to the idle list only if still usable."""
        try:
            cursor = await connection.execute(sql, params)
            rows = await cursor.fetchall() if cursor.description else []
        except psycopg.OperationalError:
            connection.pgconn.finish()  # the connection is broken
            raise
        except psycopg.Error:
            self.idle.append(connection)  # the statement failed; in autocommit the connection is fine
            raise
        except BaseException:
            connection.pgconn.finish()  # cancelled mid-statement: its state is unknown
            raise
        self.idle.append(connection)
        return rows

    def discard(self) -> None:
        """Close the idle connections without a loop (theirs is gone)."""
        for connection in self.idle:
            connection.pgconn.finish()  # no loop to await close() on
        self.idle.clear()

    async def close(self) -> None:
        for connection in self.idle:
            await connection.close()
        self.idle.clear()


_by_loop: dict[asyncio.AbstractEventLoop, LoopConnections] = {}


def _connection_params() -> dict[str, Any]:
    from django.db import connections

    params = connections["default"].get_connection_params()
    # Django's own cursor class and adapters are for its sync connections; plain psycopg here.
    for key in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(key, None)
    return params


def connections_for_this_loop() -> LoopConnections:
    loop = asyncio.get_running_loop()
    pool = _by_loop.get(loop)
    if pool is None:
        for old_loop in [old for old in _by_loop if old.is_closed()]:
            _by_loop.pop(old_loop).discard()
        pool = _by_loop[loop] = LoopConnections(_connection_params())
    return pool


async def fetch_all(sql: str, params: Any) -> list[tuple]:
    return await connections_for_this_loop().fetch_all(sql, params)


async def close_for_this_loop() -> None:
    """Close this loop's connections (tests call it before their loop ends)."""
    pool = _by_loop.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        await pool.close()


def discard_all() -> None:
    """Close every idle connection, from outside any loop (end of a test session)."""
    while _by_loop:
        _by_loop.popitem()[1].discard()


class Batched(Generic[Item, Result]):
    """One statement for many callers: a group commit.

    A caller hands in its item and waits for its own result. The first caller
    starts a write; everyone who arrives while it is in flight goes into the
    next one, together. A quiet site writes each item at once; a burst of a
    thousand readers makes a handful of statements, not a thousand round trips
    each waiting its turn on a busy loop. `write` gets the items in order and
    returns one result per item; if it raises, every caller in that batch gets
    the error.
    """

    def __init__(self, write: Callable[[list[Item]], Awaitable[list[Result]]], max_items: int = 500) -> None:
        self.write = write
        self.max_items = max_items
        self.waiting: list[tuple[Item, asyncio.Future]] = []
        self.writer: asyncio.Task | None = None

    async def __call__(self, item: Item) -> Result:
        loop = asyncio.get_running_loop()
        result = loop.create_future()
        self.waiting.append((item, result))
        if self.writer is None or self.writer.done() or self.writer.get_loop() is not loop:
            self.writer = loop.create_task(self._write_while_waiting())
        # The write goes on if this caller is cancelled: the others in its batch need it.
        return await asyncio.shield(result)

    async def _write_while_waiting(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting[:self.max_items], self.waiting[self.max_items:]
            try:
                results = await self.write([item for item, _ in batch])
            except Exception as error:
                for _, result in batch:
                    if not result.done():
                        result.set_exception(error)
                continue
            except BaseException:  # cancelled (the loop is closing): nobody may be left waiting
                for _, result in batch + self.waiting:
                    if not result.done():
                        result.set_exception(DatabaseUnavailable("the write was interrupted"))
                self.waiting = []
                raise
            for (_, result), value in zip(batch, results, strict=True):
                if not result.done():
                    result.set_result(value)
