"""``python -m durableflow``: run a Ray Workflows program unmodified, or the CLI.

``python -m durableflow run script.py [args...]`` (or ``run -m package.module [args...]``)
calls :func:`durableflow.install_ray_workflow`, so ``from ray import workflow`` (and
``ray.workflow.exceptions`` / ``ray.workflow.common``) give durableflow's, then runs the
program as ``python script.py`` would: as ``__main__``, with ``sys.argv`` set to the script and
its arguments and the script's folder first on ``sys.path``. Anything else is the
``durableflow`` command line (``python -m durableflow list`` ...).
"""

from __future__ import annotations

import os
import runpy
import sys

USAGE = "usage: python -m durableflow run (SCRIPT | -m MODULE) [ARGS...]"


def run_program(argv: list[str]) -> None:
    """Run a program (``[script, *args]`` or ``["-m", module, *args]``) with the aliases.

    Raises:
        SystemExit: no program given (exit status 2, with the usage).
    """
    if not argv or (argv[0] == "-m" and len(argv) < 2):
        print(USAGE, file=sys.stderr)
        raise SystemExit(2)
    from durableflow.compat import install_ray_workflow

    install_ray_workflow()
    if argv[0] == "-m":
        sys.argv = [argv[1], *argv[2:]]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
        return
    script = argv[0]
    sys.argv = list(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    runpy.run_path(script, run_name="__main__")


def main() -> None:
    """Dispatch ``run`` here and everything else to the CLI."""
    if len(sys.argv) > 1 and sys.argv[1] == "run":
        run_program(sys.argv[2:])
        return
    from durableflow.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
