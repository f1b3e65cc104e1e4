"""Batching for the data stores: calls that arrive together are served together.

:class:`Coalescer` turns concurrent calls into batches (the PostgreSQL store releases
jobs that finish together in one statement); :class:`CommittedEvents` sends the events
of store operations that finish together in one :meth:`EventBroker.publish_many`, so a
hundred jobs released at once cost one message on a remote broker, not a hundred.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from logging import Logger
from typing import Generic, TypeVar

from horae.events import Event

from ._base import EventBroker, publish_committed

_In = TypeVar("_In")
_Out = TypeVar("_Out")


class Coalescer(Generic[_In, _Out]):
    """Runs calls that come in while an earlier batch is on its way as one batch.

    :meth:`submit` queues an item and waits for its own result. The first item starts a
    batch at the next turn of the event loop, so every item submitted in the same loop
    tick joins it; items that arrive while a batch runs form the next one. Under load
    the batches grow by themselves (one round trip and one commit for all the jobs that
    finished meanwhile); a lone call costs one loop turn more than a direct one.

    *run_batch* gets the items and returns one result per item, in order. If it raises,
    every item of the batch gets that error. With *key*, two items with the same key
    never share a batch (the later one waits for the next).
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[_In]], Awaitable[Sequence[_Out]]],
        key: Callable[[_In], Hashable] | None = None,
    ) -> None:
        self._run_batch = run_batch
        self._key = key
        self._queue: list[tuple[_In, asyncio.Future[_Out]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, item: _In) -> _Out:
        """Queue *item*, and return its result once its batch has run."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Out] = loop.create_future()
        self._queue.append((item, future))
        if self._drainer is None:
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch: list[tuple[_In, asyncio.Future[_Out]]] = []
                later: list[tuple[_In, asyncio.Future[_Out]]] = []
                keys: set[Hashable] = set()
                for entry in self._queue:
                    if self._key is None:
                        batch.append(entry)
                        continue
                    key = self._key(entry[0])
                    # the same key twice in one statement is an error; take turns
                    (later if key in keys else batch).append(entry)
                    keys.add(key)
                self._queue = later
                await self._run(batch)
        except BaseException:
            queued, self._queue = self._queue, []
            for _, future in queued:
                future.cancel()
            raise
        finally:
            self._drainer = None

    async def _run(self, batch: list[tuple[_In, asyncio.Future[_Out]]]) -> None:
        try:
            results = await self._run_batch([item for item, _ in batch])
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            # a caller that was cancelled meanwhile has a done future
            if not future.done():
                future.set_result(result)


class CommittedEvents:
    """Publishes the events of a data store's committed changes, never raising.

    The events of operations that finish at about the same time (while an earlier batch
    is being sent, or in the same loop tick) go out in one
    :meth:`EventBroker.publish_many`, in the order the operations finished. Each
    :meth:`publish` returns once its events have been handed to the local subscribers.
    """

    def __init__(self) -> None:
        self._batches: Coalescer[tuple[EventBroker, list[Event], Logger], None] = Coalescer(
            self._publish_together
        )

    async def publish(
        self, broker: EventBroker | None, events: Iterable[Event], logger: Logger
    ) -> None:
        """Publish *events* (see :func:`publish_committed`), together with those of
        other operations that finish at the same time."""
        batch = list(events)
        if broker is None or not batch:
            return
        await self._batches.submit((broker, batch, logger))

    @staticmethod
    async def _publish_together(
        items: Sequence[tuple[EventBroker, list[Event], Logger]],
    ) -> list[None]:
        # one broker per store in practice; several are served one after the other
        start = 0
        while start < len(items):
            broker, _, logger = items[start]
            stop = start
            while stop < len(items) and items[stop][0] is broker:
                stop += 1
            events = [event for item in items[start:stop] for event in item[1]]
            await publish_committed(broker, events, logger)
            start = stop
        return [None] * len(items)
