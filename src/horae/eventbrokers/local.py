"""LocalEventBroker: delivers events to subscribers in this process only."""

from __future__ import annotations

from horae.events import Event

from ._local_delivery import LocalDeliveryBroker


class LocalEventBroker(LocalDeliveryBroker):
    """The default broker: events reach the subscribers of this process, nobody else.

    ``publish`` and ``publish_local`` are the same thing here. Delivery follows the
    rules in :mod:`horae.eventbrokers._local_delivery`: sync callbacks run inline in
    ``publish`` (so they have seen the event when ``publish`` returns), async callbacks
    are awaited one event at a time per subscriber in a task of their own, in
    publishing order; a callback that raises is logged on the logger given to
    :meth:`start` and the others are still served. Subscribing and publishing also work
    before :meth:`start` and after :meth:`stop`.

    Several schedulers that share a persistent store need a remote broker
    (``PostgresEventBroker``, ``RedisEventBroker``) to wake each other; with this one
    they only find each other's work by polling (``shared`` is False).

    Args:
        delivery_grace_period: how many seconds :meth:`stop` waits for queued async
            deliveries before it cancels them.
    """

    async def publish(self, event: Event) -> None:
        """Deliver *event* to this process's subscribers (the only node there is)."""
        self.deliver(event)


def local_only(broker: object) -> LocalEventBroker | None:
    """*broker* if its ``publish`` is exactly :meth:`LocalEventBroker.publish` (events
    reach this process's subscribers and nobody else), else ``None``.

    Data stores use it to skip building events that no subscriber wants
    (:meth:`~LocalDeliveryBroker.has_subscribers`); a subclass that overrides
    ``publish`` (to send events elsewhere, or to record them) gets every event.
    """
    if isinstance(broker, LocalEventBroker) and type(broker).publish is LocalEventBroker.publish:
        return broker
    return None
