"""Serializers for the values persistent stores keep.

Layout: ``_base`` holds the Serializer interface; ``json`` (the default of persistent
stores; its tagged format lives in ``_jsoncodec``) and ``pickle`` (opt-in, trusted
stores only) implement it; ``_records`` turns tasks, schedules, jobs and results into
the flat records that every persistent store keeps.
"""

from __future__ import annotations

from ._base import Serializer as Serializer
from .json import JSONSerializer as JSONSerializer
from .pickle import PickleSerializer as PickleSerializer
