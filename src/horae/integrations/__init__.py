"""Running a scheduler inside a web application's life cycle.

* :mod:`horae.integrations.asgi`: ``lifespan(scheduler)`` for FastAPI and Starlette (any
  ASGI framework with a lifespan context);
* :mod:`horae.integrations.aiohttp`: ``scheduler_ctx(scheduler)`` for aiohttp's
  ``app.cleanup_ctx``.

Each submodule imports only what its framework needs (:mod:`.asgi` needs none), so
``import horae`` never imports a web framework.
"""
