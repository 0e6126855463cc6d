"""Storage: the plugin interface, its backends, key layout, serializer and workflow store."""

from durableflow.storage.base import Storage
from durableflow.storage.urls import open_storage, register_scheme

__all__ = ["Storage", "open_storage", "register_scheme"]
