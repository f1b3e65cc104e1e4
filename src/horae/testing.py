"""Test support for horae and for third-party stores, brokers and apps.

* :class:`FakeClock`: a clock you move by hand (``advance``) or that jumps to the next
  sleeper's deadline by itself when the program is idle (``autojump``).
* :class:`DataStoreContract` and :class:`EventBrokerContract`: the public conformance
  suites every built-in store and broker passes. Subclass one in your test module and
  provide the fixtures it names to check your own implementation.
"""

from __future__ import annotations

from ._contract_broker import EventBrokerContract as EventBrokerContract
from ._contract_datastore import DataStoreContract as DataStoreContract
from ._fakeclock import FakeClock as FakeClock
