"""Serializers for the values persistent stores keep. ``_base`` holds the interface."""

from __future__ import annotations

from ._base import Serializer as Serializer
