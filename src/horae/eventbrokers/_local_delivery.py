"""Local fan-out of events to this process's subscribers, shared by every broker.

:class:`LocalDeliveryBroker` implements everything of :class:`EventBroker` except
``publish``: subscriptions, type filters, one-shot subscriptions, sync and async
callbacks, error logging and draining on ``stop``. :class:`~horae.eventbrokers.LocalEventBroker`
is this class with ``publish = publish_local``; a remote broker (PostgreSQL, Redis)
subclasses it, sends events over its connection in ``publish`` and hands what it
receives to :meth:`LocalDeliveryBroker.deliver`. :func:`encode_event` and
:func:`decode_event` are the wire format those brokers share.

Delivery rules (the contract of every broker built on this class):

* Subscribers are served in the order they subscribed.
* A sync callback runs inline, inside ``publish``/``deliver``, on the event loop thread.
* An async callback (a coroutine function, or any callable that returns an awaitable)
  is awaited in a task of its own, so a slow subscriber never blocks the publisher.
  Each subscription has one such task at a time and a FIFO queue in front of it, so
  one subscriber sees its events in publishing order and never two at once; different
  subscribers run concurrently. The queue is unbounded: a subscriber that is slower
  than the event rate for good grows it without limit.
* A callback that raises :class:`Exception` is logged on the broker's logger; the other
  subscribers, the publisher and the broker carry on. ``BaseException`` (cancellation,
  ``KeyboardInterrupt``) is never swallowed.
* Subscribing, unsubscribing and publishing work at any time from the event loop
  thread, also before ``start`` (events are then logged on the module's logger) and
  after ``stop``. ``stop`` waits up to ``delivery_grace_period`` seconds for queued
  async deliveries, then cancels the rest.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from abc import abstractmethod
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from logging import Logger
from typing import Any

from horae._exceptions import DeserializationError
from horae.events import Event

from ._base import EventBroker, Subscription

_default_logger = logging.getLogger("horae.eventbrokers")


def _is_async_callable(callback: Callable[..., object]) -> bool:
    if inspect.iscoroutinefunction(callback):
        return True
    # a callable object whose __call__ is a coroutine function
    call = getattr(callback, "__call__", None)  # noqa: B004 - we want __call__ itself
    return call is not None and inspect.iscoroutinefunction(call)


def _is_event_class(candidate: object) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, Event)


class _LocalSubscription(Subscription):
    """One subscriber: its filter, and the queue + task that serve it if it is async."""

    __slots__ = (
        "_broker",
        "_drainer",
        "_queue",
        "active",
        "callback",
        "event_types",
        "is_async",
        "one_shot",
    )

    def __init__(
        self,
        broker: LocalDeliveryBroker,
        callback: Callable[[Event], object],
        event_types: tuple[type[Event], ...] | None,
        one_shot: bool,
    ) -> None:
        self._broker = broker
        self.callback = callback
        self.event_types = event_types
        self.one_shot = one_shot
        self.is_async = _is_async_callable(callback)
        self.active = True
        self._queue: deque[Event | Awaitable[object]] = deque()
        self._drainer: asyncio.Task[None] | None = None

    def matches(self, event: Event) -> bool:
        return self.event_types is None or isinstance(event, self.event_types)

    def unsubscribe(self) -> None:
        if not self.active:
            return
        self.active = False
        self._broker._subscriptions.pop(id(self), None)
        self._broker._by_type.clear()
        # Events still queued are not delivered any more; the callback already running
        # (if any) is left to finish.
        while self._queue:
            _discard(self._queue.popleft())

    def deliver(self, event: Event) -> None:
        if self.is_async:
            self._enqueue(event)
            return
        try:
            result = self.callback(event)
        except Exception:
            self._broker._log_callback_error(self.callback, event)
            return
        if inspect.isawaitable(result):
            # A plain function that returned an awaitable (e.g. a lambda calling a
            # coroutine function): await it behind the events already queued.
            self._enqueue(result)

    def _enqueue(self, item: Event | Awaitable[object]) -> None:
        self._queue.append(item)
        if self._drainer is None:
            # Needs a running loop; deliver() is only ever called from coroutines.
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
            self._broker._drainers.add(self._drainer)
            self._drainer.add_done_callback(self._broker._drainers.discard)

    async def _drain(self) -> None:
        try:
            while self._queue:
                item = self._queue.popleft()
                event = item if isinstance(item, Event) else None
                try:
                    result = self.callback(item) if isinstance(item, Event) else item
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    self._broker._log_callback_error(self.callback, event)
        finally:
            # No await between the loop test and this line, so an event enqueued in the
            # meantime is impossible; after it, _enqueue starts a new drainer.
            self._drainer = None


def _discard(item: Event | Awaitable[object]) -> None:
    # Close coroutines that will never be awaited, so Python does not warn about them.
    close = getattr(item, "close", None)
    if inspect.iscoroutine(item) and close is not None:
        close()


class LocalDeliveryBroker(EventBroker):
    """An :class:`EventBroker` that implements local fan-out; subclasses add ``publish``.

    Args:
        delivery_grace_period: how many seconds ``stop`` waits for queued async
            deliveries before it cancels them.
    """

    # Not slotted: subclasses keep connection state as plain attributes.

    def __init__(self, *, delivery_grace_period: float = 5.0) -> None:
        self._subscriptions: dict[int, _LocalSubscription] = {}
        #: event class -> the subscriptions it matches, in subscription order; rebuilt
        #: lazily after every subscribe/unsubscribe (events far outnumber those)
        self._by_type: dict[type[Event], tuple[_LocalSubscription, ...]] = {}
        self._drainers: set[asyncio.Task[None]] = set()
        self._logger: Logger = _default_logger
        self.delivery_grace_period = delivery_grace_period

    async def start(self, logger: Logger) -> None:
        """Remember the logger that callback errors are logged on."""
        self._logger = logger

    async def stop(self) -> None:
        """Wait (up to ``delivery_grace_period``) for queued async deliveries."""
        pending = set(self._drainers)
        if not pending:
            return
        _done, late = await asyncio.wait(pending, timeout=self.delivery_grace_period)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)
            self._logger.warning(
                "cancelled %d event deliveries still running after %.1f s",
                len(late),
                self.delivery_grace_period,
            )

    @abstractmethod
    async def publish(self, event: Event) -> None:
        """Deliver *event* to subscribers on every node."""

    async def publish_local(self, event: Event) -> None:
        """Deliver *event* to this process's subscribers only."""
        self.deliver(event)

    def deliver(self, event: Event) -> None:
        """Hand *event* to every matching local subscriber (see the module docstring).

        Remote brokers call this for each event they receive. It must be called on the
        event loop thread; sync callbacks have run when it returns.
        """
        # The tuple is a snapshot: a callback may (un)subscribe while we iterate over it.
        for subscription in self._matching(type(event)):
            if not subscription.active:
                continue
            if subscription.one_shot:
                # End it before calling, so a re-entrant publish cannot deliver twice.
                subscription.unsubscribe()
            subscription.deliver(event)

    def _matching(self, event_type: type[Event]) -> tuple[_LocalSubscription, ...]:
        matching = self._by_type.get(event_type)
        if matching is None:
            matching = self._by_type[event_type] = tuple(
                subscription
                for subscription in self._subscriptions.values()
                if subscription.event_types is None
                or issubclass(event_type, subscription.event_types)
            )
        return matching

    def has_subscribers(self, event_type: type[Event]) -> bool:
        """True if some subscriber of this process would get an event of *event_type*.

        Publishers whose events reach no other process may skip building events that
        nobody here wants; events for remote brokers must always be published.
        """
        return bool(self._matching(event_type))

    def subscribe(
        self,
        callback: Callable[[Event], object],
        event_types: Iterable[type[Event]] | None = None,
        *,
        one_shot: bool = False,
    ) -> Subscription:
        """Register *callback* for events of *event_types* (subclasses included; all if
        ``None``); a one-shot subscription ends after its first event."""
        if isinstance(event_types, type):
            # a common slip: subscribe(callback, JobReleased) instead of {JobReleased}
            raise TypeError(
                f"event_types must be an iterable of Event subclasses; pass "
                f"{{{event_types.__name__}}} instead of {event_types.__name__}"
            )
        types = None if event_types is None else tuple(event_types)
        if types is not None:
            bad: list[object] = [t for t in types if not _is_event_class(t)]
            if bad:
                raise TypeError(
                    f"event_types must be an iterable of Event subclasses such as "
                    f"{{JobReleased}}, got {bad[0]!r} in it"
                )
        subscription = _LocalSubscription(self, callback, types, one_shot)
        self._subscriptions[id(subscription)] = subscription
        self._by_type.clear()
        return subscription

    def _log_callback_error(self, callback: Callable[..., object], event: Event | None) -> None:
        what = type(event).__name__ if event is not None else "an event"
        self._logger.exception("event callback %r raised an exception on %s", callback, what)


def encode_event(event: Event, origin: str) -> str:
    """Encode *event* as the JSON text that remote brokers send.

    *origin* names the sending broker instance, so a broker that also receives its own
    messages (Redis pub/sub, PostgreSQL NOTIFY) can recognise and skip them.
    """
    return json.dumps({"origin": origin, "event": event.to_dict()}, separators=(",", ":"))


def decode_event(payload: str | bytes) -> tuple[str, Event]:
    """Decode :func:`encode_event` output into ``(origin, event)``.

    Raises:
        DeserializationError: the payload is not a well-formed event message.
    """
    try:
        message: Any = json.loads(payload)
        origin = message["origin"]
        event = Event.from_dict(message["event"])
    except DeserializationError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise DeserializationError(f"malformed event message {payload!r}: {exc}") from exc
    if not isinstance(origin, str):
        raise DeserializationError(f"malformed event message {payload!r}: origin is not a str")
    return origin, event
