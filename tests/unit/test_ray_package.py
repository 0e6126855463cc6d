"""durableflow.ray holds Ray; importing its Ray-free parts does not start or import Ray."""

from __future__ import annotations

import subprocess
import sys

from durableflow.client import executors


def test_the_ray_free_parts_of_the_package_import_without_ray():
    code = (
        "import sys; sys.modules['ray'] = None  # any import of ray fails\n"
        "import durableflow.ray, durableflow.ray.values, durableflow.ray.packing\n"
        "import durableflow.ray.coordinator, durableflow.ray.runner\n"
        "from durableflow.ray.coordinator import shutdown_coordinator\n"
        "print('imported')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["imported"], done.stderr


def test_the_ray_executor_is_registered_by_name_and_imported_only_when_used():
    assert executors.EXECUTORS["ray"] == "durableflow.ray.executor:RayExecutor"
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from durableflow.client.executors import make_executor\n"
        "print(type(make_executor('thread')).__name__)\n"
        "try:\n"
        "    make_executor('ray')\n"
        "except ImportError as err:\n"
        "    print('HINT', 'the Ray executor needs Ray' in str(err))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["ThreadExecutor", "HINT", "True"], done.stderr
