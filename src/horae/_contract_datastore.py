"""DataStoreContract: the conformance suite that every data store passes.

The tests live in three modules (schedules, jobs, results); this one puts them together.
"""

from __future__ import annotations

from horae._contract_datastore_control import JobControlContractTests
from horae._contract_datastore_harness import (
    CONTRACT_TEST_TIMEOUT as CONTRACT_TEST_TIMEOUT,
)
from horae._contract_datastore_harness import StoreHarness as StoreHarness
from horae._contract_datastore_jobs import JobQueueContractTests
from horae._contract_datastore_results import JobLeaseContractTests, PersistenceContractTests
from horae._contract_datastore_schedules import (
    ScheduleCrudContractTests,
    ScheduleLeaseContractTests,
    TaskContractTests,
)


class DataStoreContract(
    TaskContractTests,
    ScheduleCrudContractTests,
    ScheduleLeaseContractTests,
    JobQueueContractTests,
    JobLeaseContractTests,
    PersistenceContractTests,
    JobControlContractTests,
):
    """The public conformance tests of :class:`~horae.datastores.DataStore`.

    Subclass it in a test module (the name must start with ``Test``) and provide a
    ``store_factory`` fixture: it returns a callable that makes a new, **unstarted**
    store bound to this test's namespace (a fresh database schema, key prefix, file...).
    For a store whose ``capabilities.shared`` is True, two calls must give two instances
    that share data (two nodes); for a ``persistent`` one, a new instance must see what
    a stopped one stored. Clean the namespace up in the fixture's teardown::

        from horae.testing import DataStoreContract

        class TestMyStore(DataStoreContract):
            @pytest.fixture
            def store_factory(self, tmp_path):
                return lambda: MyStore(tmp_path / "db")

    Every test starts its stores with a :class:`~horae.eventbrokers.LocalEventBroker`, a
    logger and a :class:`~horae.testing.FakeClock` at 2030-01-01 UTC, records every
    event published, passes explicit ``now`` values, and stops the stores at the end. It
    runs under ``pytest.mark.anyio`` on asyncio with a hard timeout of
    ``CONTRACT_TEST_TIMEOUT`` seconds. Tests that need a capability the store does not
    declare (``persistent``, ``shared``) skip and name it; tests that involve two nodes
    use two instances of a shared store, or one instance with two scheduler ids.

    Override the ``schedule_trigger`` fixture if your store cannot keep an
    ``IntervalTrigger``. Only the public ``DataStore`` methods are used.
    """
