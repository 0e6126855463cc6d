"""Client: the hub every caller goes through (the facade, the CLI, workers, the Ray coordinator)."""

from durableflow.client.core import Client, make_executor

__all__ = ["Client", "make_executor"]
