"""Client: the hub every caller goes through (the facade, the CLI, workers, the Ray coordinator).

Where the workflows it starts run is its runner (:mod:`.runners`, chosen by :mod:`.routing`);
what executes their tasks is its executor (:mod:`.executors`). Both are plugins by name.
"""

from durableflow.client.core import Client, Reader
from durableflow.client.executors import make_executor, register_executor
from durableflow.client.routing import register_runner
from durableflow.client.runners import Runner

__all__ = ["Client", "Reader", "Runner", "make_executor", "register_executor", "register_runner"]
