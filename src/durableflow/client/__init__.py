"""Client: the hub every caller goes through (the facade, the CLI, workers, the Ray coordinator)."""

from durableflow.client.core import Client
from durableflow.client.executors import make_executor

__all__ = ["Client", "make_executor"]
