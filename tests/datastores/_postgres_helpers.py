"""Test helpers for the PostgreSQL store: a connection class that counts and loses answers.

:class:`TracingConnection` is given to ``asyncpg.create_pool(connection_class=...)`` for
a pool that the test owns and hands to the store. It records every statement the store
sends (to count round trips), and can *lose the answer* of a chosen statement: the
statement runs and commits on the server, then the connection dies before the store
sees the result. That is the one failure a retrying store must survive without
duplicating anything, and it cannot be produced reliably by killing backends from
outside.
"""

from __future__ import annotations

from typing import Any, ClassVar

import asyncpg  # type: ignore[import-untyped]


class TracingConnection(asyncpg.Connection):  # type: ignore[misc]
    """An asyncpg connection that records statements and loses chosen answers."""

    #: every statement sent through any TracingConnection, with its arguments, in order
    statements: ClassVar[list[tuple[str, tuple[Any, ...]]]] = []
    #: substrings of statements whose answer is lost (each entry is used once)
    lose_answer_of: ClassVar[list[str]] = []

    @classmethod
    def clear_trace(cls) -> None:
        cls.statements.clear()
        cls.lose_answer_of.clear()

    def _after(self, query: str) -> None:
        for marker in list(self.lose_answer_of):
            if marker in query:
                self.lose_answer_of.remove(marker)
                self.terminate()
                raise asyncpg.ConnectionDoesNotExistError(
                    "connection was closed in the middle of operation (lost by the test)"
                )

    async def execute(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self.statements.append((query, args))
        result = await super().execute(query, *args, **kwargs)
        self._after(query)
        return result

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self.statements.append((query, args))
        result = await super().fetch(query, *args, **kwargs)
        self._after(query)
        return result

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self.statements.append((query, args))
        result = await super().fetchval(query, *args, **kwargs)
        self._after(query)
        return result

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> Any:
        self.statements.append((query, args))
        result = await super().fetchrow(query, *args, **kwargs)
        self._after(query)
        return result
