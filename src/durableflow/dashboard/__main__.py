"""``python -m durableflow.dashboard``: the same as ``durableflow ui``.

Options: ``[--storage URL] [--host H] [--port P] [--open] [--read-only] [--token T]``.
"""

from __future__ import annotations

import argparse
import sys

from durableflow.dashboard.security import UnsafeBindError
from durableflow.errors import WorkflowError


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and serve; 2 on a refused bind, 1 on a storage error."""
    parser = argparse.ArgumentParser(
        prog="python -m durableflow.dashboard", description="The durableflow web dashboard."
    )
    parser.add_argument("--storage", "-s", default=None, help="storage URL or path")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8233)
    parser.add_argument("--open", action="store_true", help="open a browser")
    parser.add_argument("--read-only", action="store_true", help="hide and refuse every action")
    parser.add_argument("--token", default=None, help="default: $DURABLEFLOW_UI_TOKEN")
    args = parser.parse_args(argv)
    from durableflow.dashboard.server import serve

    try:
        serve(
            storage=args.storage,
            host=args.host,
            port=args.port,
            token=args.token,
            read_only=args.read_only,
            open_browser=args.open,
        )
    except UnsafeBindError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except WorkflowError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
