"""Client: the hub every caller goes through (the facade, the CLI, workers, the Ray coordinator)."""

from durableflow.client.core import Client, Reader
from durableflow.client.executors import make_executor, register_executor

__all__ = ["Client", "Reader", "make_executor", "register_executor"]
