"""Tests of the event brokers (a package, so that its module names do not clash with
tests/datastores/test_postgres.py and test_redis.py)."""
