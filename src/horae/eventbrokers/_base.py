"""The EventBroker interface: delivers events to subscribers on this node and others."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable
from logging import Logger
from typing import Protocol, TypeVar

from horae.events import Event

_E_contra = TypeVar("_E_contra", bound=Event, contravariant=True)


class EventCallback(Protocol[_E_contra]):
    """A subscriber: a plain function or a coroutine function taking one event."""

    def __call__(self, event: _E_contra, /) -> Awaitable[None] | None: ...


class Subscription(ABC):
    """A handle on one subscription; ``unsubscribe()`` ends it (idempotent)."""

    __slots__ = ()

    @abstractmethod
    def unsubscribe(self) -> None:
        """Stop delivering events to this subscription's callback."""

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.unsubscribe()


class EventBroker(ABC):
    """Publishes events and delivers them to subscribers.

    Contract (``horae.testing.EventBrokerContract``):

    * ``publish(event)`` delivers the event to the subscribers of every node sharing the
      broker, this one included; ``publish_local(event)`` only to this node's.
    * Subscribers get events of the types they asked for (subclasses included; all when
      ``event_types`` is ``None``), in publishing order per publisher. Sync callbacks run
      on the event loop thread and must not block; async ones are awaited in a task of
      their own, so a slow subscriber never blocks the publisher, one event at a time
      per subscriber (in order). A one-shot subscription ends after its first event.
      ``horae.eventbrokers._local_delivery.LocalDeliveryBroker`` implements all of this
      for the subscribers of one process; brokers build on it.
    * A callback that raises is logged on the broker's logger and never breaks the
      broker, the publisher or the other subscribers.
    * A broker that loses its connection reconnects with back-off; while it is away the
      scheduler polls, so a lost event delays work but never loses it.
    """

    __slots__ = ()

    @abstractmethod
    async def start(self, logger: Logger) -> None:
        """Start delivering (open connections, start listener tasks)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop delivering and close connections the broker opened itself."""

    @abstractmethod
    async def publish(self, event: Event) -> None:
        """Deliver *event* to subscribers on every node."""

    async def publish_many(self, events: Iterable[Event]) -> None:
        """Deliver *events*, in order, to subscribers on every node.

        The same as calling :meth:`publish` for each event in turn (which is what this
        default does); remote brokers send the events together, in as few messages and
        round trips as the server allows. Data stores publish the events of one
        operation (a batch of jobs or schedules) through this.
        """
        for event in events:
            await self.publish(event)

    @abstractmethod
    async def publish_local(self, event: Event) -> None:
        """Deliver *event* to this node's subscribers only."""

    @abstractmethod
    def subscribe(
        self,
        callback: Callable[[Event], object],
        event_types: Iterable[type[Event]] | None = None,
        *,
        one_shot: bool = False,
    ) -> Subscription:
        """Register *callback* for events of *event_types* (all if ``None``)."""

    def add_reconnect_callback(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call *callback* (without arguments, on the event loop thread; it must not
        block) each time the broker has got its connection back after losing it.

        Events that other nodes published meanwhile were missed, so a scheduler wakes
        all its loops at once instead of waiting for its next poll. Returns a function
        that removes the callback. Brokers that never lose a connection (this default)
        never call it.
        """
        return _nothing_to_remove

    @property
    def connected(self) -> bool:
        """False while a remote broker has lost its connection (the scheduler then polls
        more often). Always True for a local broker."""
        return True

    @property
    def shared(self) -> bool:
        """True when ``publish`` reaches other processes (other instances connected to
        the same server and channel); False for a broker that only serves this process.

        A scheduler whose data store is shared but whose broker is not cannot be woken
        by other nodes and relies on polling. ``EventBrokerContract`` runs its
        cross-instance tests only for shared brokers.
        """
        return False


def _nothing_to_remove() -> None:
    pass


async def publish_committed(
    broker: EventBroker | None, events: Iterable[Event], logger: Logger
) -> None:
    """Publish the events of a change that a data store has made durable, all at once
    (:meth:`EventBroker.publish_many`), never raising.

    The change is committed: a broker failure must not make the caller believe it was
    not (it would retry). Nodes that miss the events find the change by polling.
    """
    batch = list(events)
    if broker is None or not batch:
        return
    try:
        await broker.publish_many(batch)
    except Exception:
        names = sorted({type(event).__name__ for event in batch})
        logger.exception("could not publish %d event(s) (%s)", len(batch), ", ".join(names))


#: what EventBroker.subscribe accepts, for type annotations in user code
AnyEventCallback = Callable[[Event], "Awaitable[None] | None"]
