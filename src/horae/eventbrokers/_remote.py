"""What the brokers that talk to a server share: ordering by echo, and staying connected.

:class:`RemoteBroker` is a :class:`~horae.eventbrokers._local_delivery.LocalDeliveryBroker`
that sends each published event to a server (PostgreSQL NOTIFY, Redis PUBLISH) and
delivers what the server sends back. A subclass supplies the connection-level parts
(open, listen, send, disconnect); this module owns the rules every remote broker follows:

* **One order for everybody.** A node receives its own messages back from the server
  (it listens on the channel it publishes to). ``publish`` sends the event, then waits
  for that echo and delivers the event locally *when it comes back*, in the order the
  server put it among everybody else's. So every node sees the events of all nodes in
  the server's one order, and "A published, then B published" is what B's subscribers
  see too. The origin id in each message (:func:`encode_event`) tells an echo from
  another node's message, so an event of this node is delivered here exactly once.
* **Batches travel together.** :meth:`~RemoteBroker.publish_many` (what the data stores
  use for the events of one operation) packs the events into as few messages as the
  server's size limit allows (``{"origin": ..., "events": [...]}``; a lone event keeps
  the one-event form), sends them in one round trip, and waits for their echoes
  together, so a batch of a hundred jobs costs one message and one echo, not a hundred.
* **Publishing never fails.** If the event cannot be sent (not connected, the send
  fails or times out) or its echo does not come back within ``publish_timeout``, it is
  delivered locally at once and the problem is logged; ``publish`` does not raise into
  the scheduler's loop. Other nodes miss that event, which is allowed: the scheduler
  polls its stores as the safety net (see :attr:`EventBroker.connected`).
* **Staying connected.** A supervisor task watches the listening connection (the
  driver reports a closed connection; a health check every ``health_check_interval``
  seconds of silence catches a connection that hangs without closing). When it is
  lost, ``connected`` turns False, the loss is logged once, and the supervisor
  reconnects with exponential back-off and full jitter (``reconnect_delay`` doubling
  up to ``max_reconnect_delay``) for as long as it takes. Messages sent while a node
  was away are not replayed to it (neither NOTIFY nor pub/sub keeps them): once
  reconnected, the broker calls its reconnect callbacks
  (:meth:`~horae.eventbrokers.EventBroker.add_reconnect_callback`), and the scheduler
  looks for work at once instead of at its next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from abc import abstractmethod
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from logging import Logger
from typing import Any
from uuid import uuid4

import anyio

from horae._exceptions import (
    DeserializationError,
    EventBrokerError,
    HoraeError,
    SerializationError,
)
from horae.events import Event

from ._local_delivery import LocalDeliveryBroker


class _Pending:
    """A message of this node (one event or a batch) that was sent and waits for its
    echo."""

    __slots__ = ("delivered", "echoed", "events")

    def __init__(self, events: Sequence[Event]) -> None:
        self.events = events
        self.delivered = False
        self.echoed = asyncio.Event()  # set when delivered from the echo, or given up


def positive_seconds(value: object, name: str) -> float:
    """*value* as a float, or ValueError naming *name* if it is not a positive number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


class RemoteBroker(LocalDeliveryBroker):
    """A broker that shares events through a server (see the module docstring).

    Args:
        connect_timeout: seconds that :meth:`start` (and each reconnection attempt)
            may take to connect and subscribe.
        reconnect_delay: the first back-off, in seconds, after a lost connection.
        max_reconnect_delay: the longest back-off between reconnection attempts.
        health_check_interval: after this many seconds without traffic the listening
            connection is checked (a round trip that must answer within as long).
        publish_timeout: seconds that :meth:`publish` waits for the server to take an
            event and send it back before delivering it locally anyway.
        delivery_grace_period: how many seconds :meth:`stop` waits for queued async
            deliveries before it cancels them.

    Raises:
        ValueError: for a timing argument that is not a positive number.
    """

    def __init__(
        self,
        *,
        connect_timeout: float,
        reconnect_delay: float,
        max_reconnect_delay: float,
        health_check_interval: float,
        publish_timeout: float,
        delivery_grace_period: float,
    ) -> None:
        super().__init__(delivery_grace_period=delivery_grace_period)
        self.connect_timeout = positive_seconds(connect_timeout, "connect_timeout")
        self.reconnect_delay = positive_seconds(reconnect_delay, "reconnect_delay")
        self.max_reconnect_delay = max(
            positive_seconds(max_reconnect_delay, "max_reconnect_delay"), self.reconnect_delay
        )
        self.health_check_interval = positive_seconds(
            health_check_interval, "health_check_interval"
        )
        self.publish_timeout = positive_seconds(publish_timeout, "publish_timeout")
        # Unique per instance (not per process): two brokers in one process are two
        # nodes as far as the channel is concerned, and each must recognise its echoes.
        self._origin = uuid4().hex
        self._connected = False
        self._supervisor: asyncio.Task[None] | None = None
        self._listen_scope: anyio.CancelScope | None = None
        self._restart_reason: str | None = None
        self._unsent_logged = False
        # wire text -> this node's events sent with it, oldest first. Equal events
        # published at once share one key; the echoes release them in turn.
        self._pending: dict[str, deque[_Pending]] = {}
        self._reconnect_callbacks: list[Callable[[], object]] = []

    # ---- the parts a subclass supplies ---------------------------------------------------

    @property
    @abstractmethod
    def _server(self) -> str:
        """The server and channel, for messages ("PostgreSQL at db:5432, channel 'x'")."""

    @abstractmethod
    async def _open(self) -> None:
        """Create the clients or pools the broker owns (at :meth:`start`).

        Raises:
            EventBrokerError: naming the server (never a password) when it is unreachable.
            ConfigurationError: when the driver finds the address malformed.
        """

    @abstractmethod
    async def _close(self) -> None:
        """Close what :meth:`_open` created (nothing that the user passed in)."""

    @abstractmethod
    async def _connect(self) -> None:
        """Open the listening connection; return once it is subscribed to the channel."""

    @abstractmethod
    async def _listen(self) -> None:
        """Hand every message received to :meth:`_receive` (in order) until the
        listening connection is lost, then raise an exception that says how."""

    @abstractmethod
    async def _disconnect(self, *, broken: bool) -> None:
        """Drop the listening connection, if any (*broken*: it is known to be dead).

        Must not raise: it runs while the broker recovers or stops.
        """

    @abstractmethod
    def _frame(self, message: str) -> str:
        """The text that :meth:`_send` puts on the wire for *message* (the echo's key)."""

    @abstractmethod
    async def _send(self, wire: str, message: str) -> None:
        """Send *wire* (made by :meth:`_frame` from *message*) to the channel."""

    async def _send_many(self, frames: Sequence[tuple[str, str]]) -> None:
        """Send each ``(wire, message)`` of *frames*, in order (one :meth:`_send` each
        unless a subclass does better, e.g. in one round trip)."""
        for wire, message in frames:
            await self._send(wire, message)

    @abstractmethod
    def _is_transient(self, exc: BaseException) -> bool:
        """Whether *exc* is an expected connection failure (logged without traceback)."""

    # ---- life cycle --------------------------------------------------------------------

    def add_reconnect_callback(self, callback: Callable[[], object]) -> Callable[[], None]:
        """Call *callback* each time the broker has reconnected after a lost connection
        (see :meth:`EventBroker.add_reconnect_callback`); returns its remover."""
        self._reconnect_callbacks.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._reconnect_callbacks.remove(callback)

        return remove

    @property
    def connected(self) -> bool:
        """True while the broker listens on its channel; False before :meth:`start`,
        after :meth:`stop` and while it reconnects (the scheduler then polls)."""
        return self._connected

    @property
    def shared(self) -> bool:
        """True: every instance on the same server and channel gets the events."""
        return True

    async def start(self, logger: Logger) -> None:
        """Connect and subscribe, then keep the connection up until :meth:`stop`.

        Raises:
            EventBrokerError: when the server cannot be reached within about
                ``connect_timeout`` seconds (the message names it, never a password).
            ConfigurationError: for an address the driver finds malformed.
            RuntimeError: when the broker is already started.
        """
        if self._supervisor is not None:
            raise RuntimeError(f"{type(self).__name__} is already started")
        await super().start(logger)
        await self._open()
        try:
            with anyio.fail_after(self.connect_timeout):
                await self._connect()
        except BaseException as exc:
            # described before closing: the description may look at the client
            message = (
                f"cannot listen on {self._server}: {_describe(exc, self.connect_timeout)} "
                f"(check the address and that the server is running)"
            )
            await self._disconnect(broken=True)
            await self._close()
            if isinstance(exc, Exception) and not isinstance(exc, HoraeError):
                raise EventBrokerError(message) from exc
            raise
        self._connected = True
        self._unsent_logged = False
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    async def stop(self) -> None:
        """Stop listening, deliver what is queued (up to ``delivery_grace_period``
        seconds), and close the connections the broker opened; :meth:`start` may
        start it again."""
        supervisor, self._supervisor = self._supervisor, None
        self._connected = False
        if supervisor is not None:
            supervisor.cancel()
            # asyncio.wait neither raises the task's CancelledError nor cancels it again
            await asyncio.wait({supervisor})
        await self._disconnect(broken=False)
        self._give_up_echoes()
        await super().stop()
        await self._close()

    # ---- publishing --------------------------------------------------------------------

    #: The longest message (in characters; the JSON is ASCII) that packs several events.
    #: Larger batches are split; a single event larger than this is sent on its own.
    _batch_limit = 256 * 1024

    async def publish(self, event: Event) -> None:
        """Send *event* to every node on the channel, this one included.

        Returns once this node's subscribers have had it (sync callbacks have run). It
        never raises on connection trouble: the event is then delivered here only and
        the trouble is logged (other nodes find the work by polling).

        Raises:
            SerializationError: when the event holds a value that JSON cannot carry
                (only possible for event classes defined outside horae).
        """
        await self._publish((event,))

    async def publish_many(self, events: Iterable[Event]) -> None:
        """Send *events*, in order, to every node on the channel, this one included,
        packed into as few messages as the server allows and sent in one round trip.

        Returns once this node's subscribers have had them all; never raises on
        connection trouble (as :meth:`publish`).

        Raises:
            SerializationError: when an event holds a value that JSON cannot carry
                (then none of them is sent).
        """
        batch = tuple(events)
        if batch:
            await self._publish(batch)

    async def _publish(self, events: Sequence[Event]) -> None:
        texts = [_encode_body(event) for event in events]
        if not self._connected:
            for event in events:
                self._note_unsent(event)
                self.deliver(event)
            return
        frames = [
            (self._frame(message), message, chunk)
            for message, chunk in _pack(events, texts, self._origin, self._batch_limit)
        ]
        # Registered before sending: an echo may be handled before _send returns.
        pendings = []
        for wire, _message, chunk in frames:
            pending = _Pending(chunk)
            self._pending.setdefault(wire, deque()).append(pending)
            pendings.append((wire, pending))
        sent = False
        try:
            with anyio.fail_after(self.publish_timeout):
                try:
                    await self._send_many([(wire, message) for wire, message, _ in frames])
                except Exception as exc:
                    self._log_send_failure(events, exc)
                    return
                sent = True
                for _wire, pending in pendings:
                    await pending.echoed.wait()
        except TimeoutError:
            if not sent:
                self._log_send_failure(events, TimeoutError())
            elif not all(pending.delivered for _wire, pending in pendings):
                # The server took the events but did not send them back: the listening
                # connection is probably dead without knowing it. Start over.
                self._restart_listening(
                    f"{_describe_events(events)} did not come back within "
                    f"{self.publish_timeout:g} s"
                )
        finally:
            # Deliver here what the echoes did not (failure, timeout, cancellation,
            # stop), in order.
            for wire, pending in pendings:
                self._settle(wire, pending)

    def _settle(self, wire: str, pending: _Pending) -> None:
        if pending.delivered:
            return
        waiting = self._pending.get(wire)
        if waiting is not None and pending in waiting:
            waiting.remove(pending)
            if not waiting:
                del self._pending[wire]
        pending.delivered = True
        for event in pending.events:
            self.deliver(event)

    def _give_up_echoes(self) -> None:
        """Release every publisher still waiting for an echo (they deliver locally)."""
        for waiting in self._pending.values():
            for pending in waiting:
                pending.echoed.set()

    def _note_unsent(self, event: Event) -> None:
        if self._supervisor is None:
            return  # not started (or stopped): a local broker, as documented
        if not self._unsent_logged:
            self._unsent_logged = True
            self._logger.warning(
                "not connected to %s: events are delivered to this process only until "
                "the connection is back (other nodes find the work by polling)",
                self._server,
            )
        self._logger.debug("%s delivered to this process only", type(event).__name__)

    def _log_send_failure(self, events: Sequence[Event], exc: BaseException) -> None:
        self._logger.warning(
            "could not publish %s to %s (%s); delivered to this process only "
            "(other nodes find the work by polling)",
            _describe_events(events),
            self._server,
            _describe(exc, self.publish_timeout),
        )

    # ---- receiving ---------------------------------------------------------------------

    def _take_echo(self, wire: str) -> bool:
        """If *wire* is the echo of an event this node is publishing, deliver that event
        (its publisher then returns) and return True."""
        waiting = self._pending.get(wire)
        if not waiting:
            return False
        pending = waiting.popleft()
        if not waiting:
            del self._pending[wire]
        pending.delivered = True
        for event in pending.events:
            self.deliver(event)
        pending.echoed.set()
        return True

    def _receive(self, wire: str) -> None:
        """Deliver the events in *wire* (an encoded message) unless it is this node's."""
        if self._take_echo(wire):
            return
        try:
            origin, events = _decode(wire)
        except DeserializationError as exc:
            # Another program on the channel, or an event class this version lacks.
            self._logger.warning("ignored a message on %s: %s", self._server, exc)
            return
        if origin != self._origin:
            for event in events:
                self.deliver(event)
        # else: a late echo; its publisher has already delivered the events here

    # ---- staying connected -------------------------------------------------------------

    def _restart_listening(self, reason: str) -> None:
        """Drop the listening connection and reconnect (used when it seems stuck)."""
        if self._listen_scope is not None:
            self._restart_reason = reason
            self._listen_scope.cancel()

    async def _supervise(self) -> None:
        while True:
            await self._serve()
            await self._reconnect()

    async def _serve(self) -> None:
        """Listen until the connection is lost, then log the loss and clean up."""
        failure: BaseException | None = None
        try:
            with anyio.CancelScope() as scope:
                self._listen_scope = scope
                await self._listen()
        except Exception as exc:
            failure = exc
        finally:
            self._listen_scope = None
        restart_reason, self._restart_reason = self._restart_reason, None
        self._connected = False
        self._give_up_echoes()
        await self._disconnect(broken=True)
        if failure is None:
            reason = restart_reason or "the listener stopped"
            self._logger.warning("dropped the connection to %s: %s", self._server, reason)
        else:
            self._logger.warning(
                "lost the connection to %s (%s); reconnecting, while the scheduler polls",
                self._server,
                _describe(failure, self.health_check_interval),
                exc_info=None if self._is_transient(failure) else failure,
            )

    async def _reconnect(self) -> None:
        """Try to connect until it works, with exponential back-off and full jitter."""
        delay = self.reconnect_delay
        attempt = 1
        while True:
            # Full jitter keeps many nodes from reconnecting in lock step after a
            # server restart; the first wait also spares a server that is starting.
            await anyio.sleep(random.uniform(delay / 2, delay))  # noqa: S311 - not crypto
            try:
                with anyio.fail_after(self.connect_timeout):
                    await self._connect()
            except Exception as exc:
                await self._disconnect(broken=True)
                delay = min(delay * 2, self.max_reconnect_delay)
                self._logger.warning(
                    "reconnecting to %s failed (attempt %d: %s); next attempt within %.1f s",
                    self._server,
                    attempt,
                    _describe(exc, self.connect_timeout),
                    delay,
                    exc_info=None if self._is_transient(exc) else exc,
                )
                attempt += 1
                continue
            self._connected = True
            self._unsent_logged = False
            self._logger.info(
                "reconnected to %s (attempt %d); events reach other nodes again",
                self._server,
                attempt,
            )
            for callback in list(self._reconnect_callbacks):
                self._call_reconnect_callback(callback)
            return

    def _call_reconnect_callback(self, callback: Callable[[], object]) -> None:
        try:
            callback()
        except Exception:
            self._logger.exception("a reconnect callback of %s failed", self._server)


def _encode_body(event: Event) -> str:
    """The JSON text of *event* alone (without the origin)."""
    try:
        return json.dumps(event.to_dict(), separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise SerializationError(
            f"cannot send {type(event).__name__} to other nodes: {exc}; the fields of "
            f"an event must be JSON values, datetimes, UUIDs or JobOutcome members"
        ) from exc


def _pack(
    events: Sequence[Event], texts: Sequence[str], origin: str, limit: int
) -> list[tuple[str, Sequence[Event]]]:
    """Pack the events (with their JSON *texts*) into messages of at most *limit*
    characters where possible: ``(message, events)`` pairs, in order.

    A message with one event has the form of :func:`encode_event`; a message with
    several is ``{"origin": ..., "events": [...]}``.
    """
    if len(events) == 1:
        return [(_single(origin, texts[0]), events)]
    head = f'{{"origin":{json.dumps(origin)},"events":['
    overhead = len(head) + 2  # "]}"
    packed: list[tuple[str, Sequence[Event]]] = []
    first, size = 0, overhead
    for index, text in enumerate(texts):
        if index > first and size + 1 + len(text) > limit:
            packed.append(_message(head, origin, events, texts, first, index))
            first, size = index, overhead
        size += len(text) + (1 if index > first else 0)
    packed.append(_message(head, origin, events, texts, first, len(texts)))
    return packed


def _message(
    head: str, origin: str, events: Sequence[Event], texts: Sequence[str], start: int, stop: int
) -> tuple[str, Sequence[Event]]:
    if stop - start == 1:
        return _single(origin, texts[start]), events[start:stop]
    return head + ",".join(texts[start:stop]) + "]}", events[start:stop]


def _single(origin: str, text: str) -> str:
    # exactly what encode_event makes, without encoding the event twice
    return f'{{"origin":{json.dumps(origin)},"event":{text}}}'


def _decode(payload: str) -> tuple[str, list[Event]]:
    """Decode a message of :func:`_pack` (or :func:`encode_event`) into ``(origin,
    events)``.

    Raises:
        DeserializationError: the payload is not a well-formed event message.
    """
    try:
        message: Any = json.loads(payload)
        origin = message["origin"]
        if "events" in message:
            events = [Event.from_dict(item) for item in message["events"]]
        else:
            events = [Event.from_dict(message["event"])]
    except DeserializationError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise DeserializationError(f"malformed event message {payload!r}: {exc}") from exc
    if not isinstance(origin, str):
        raise DeserializationError(f"malformed event message {payload!r}: origin is not a str")
    return origin, events


def _describe_events(events: Sequence[Event]) -> str:
    if len(events) == 1:
        return type(events[0]).__name__
    return f"{len(events)} events ({', '.join(sorted({type(e).__name__ for e in events}))})"


def _describe(exc: BaseException, timeout: float) -> str:
    # asyncio.TimeoutError is not the builtin TimeoutError before Python 3.11
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)) and not str(exc):
        return f"no answer within {timeout:g} s"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
