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
  was away are not replayed to it (neither NOTIFY nor pub/sub keeps them).
"""

from __future__ import annotations

import asyncio
import random
from abc import abstractmethod
from collections import deque
from logging import Logger
from uuid import uuid4

import anyio

from horae._exceptions import (
    DeserializationError,
    EventBrokerError,
    HoraeError,
    SerializationError,
)
from horae.events import Event

from ._local_delivery import LocalDeliveryBroker, decode_event, encode_event


class _Pending:
    """An event of this node that was sent and waits for its echo."""

    __slots__ = ("delivered", "echoed", "event")

    def __init__(self, event: Event) -> None:
        self.event = event
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

    @abstractmethod
    def _is_transient(self, exc: BaseException) -> bool:
        """Whether *exc* is an expected connection failure (logged without traceback)."""

    # ---- life cycle --------------------------------------------------------------------

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

    async def publish(self, event: Event) -> None:
        """Send *event* to every node on the channel, this one included.

        Returns once this node's subscribers have had it (sync callbacks have run). It
        never raises on connection trouble: the event is then delivered here only and
        the trouble is logged (other nodes find the work by polling).

        Raises:
            SerializationError: when the event holds a value that JSON cannot carry
                (only possible for event classes defined outside horae).
        """
        try:
            message = encode_event(event, self._origin)
        except (TypeError, ValueError) as exc:
            raise SerializationError(
                f"cannot send {type(event).__name__} to other nodes: {exc}; the fields of "
                f"an event must be JSON values, datetimes, UUIDs or JobOutcome members"
            ) from exc
        if not self._connected:
            self._note_unsent(event)
            self.deliver(event)
            return
        wire = self._frame(message)
        pending = _Pending(event)
        # Registered before sending: the echo may be handled before _send returns.
        self._pending.setdefault(wire, deque()).append(pending)
        sent = False
        try:
            with anyio.fail_after(self.publish_timeout):
                try:
                    await self._send(wire, message)
                except Exception as exc:
                    self._log_send_failure(event, exc)
                    return
                sent = True
                await pending.echoed.wait()
        except TimeoutError:
            if not sent:
                self._log_send_failure(event, TimeoutError())
            elif not pending.delivered:
                # The server took the event but did not send it back: the listening
                # connection is probably dead without knowing it. Start over.
                self._restart_listening(
                    f"{type(event).__name__} did not come back within {self.publish_timeout:g} s"
                )
        finally:
            # Deliver here if the echo did not (failure, timeout, cancellation, stop).
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
        self.deliver(pending.event)

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

    def _log_send_failure(self, event: Event, exc: BaseException) -> None:
        self._logger.warning(
            "could not publish %s to %s (%s); it was delivered to this process only "
            "(other nodes find the work by polling)",
            type(event).__name__,
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
        self.deliver(pending.event)
        pending.echoed.set()
        return True

    def _receive(self, wire: str) -> None:
        """Deliver the event in *wire* (an encoded message) unless it is this node's."""
        if self._take_echo(wire):
            return
        try:
            origin, event = decode_event(wire)
        except DeserializationError as exc:
            # Another program on the channel, or an event class this version lacks.
            self._logger.warning("ignored a message on %s: %s", self._server, exc)
            return
        if origin != self._origin:
            self.deliver(event)
        # else: a late echo; its publisher has already delivered the event here

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
            return


def _describe(exc: BaseException, timeout: float) -> str:
    # asyncio.TimeoutError is not the builtin TimeoutError before Python 3.11
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError)) and not str(exc):
        return f"no answer within {timeout:g} s"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
