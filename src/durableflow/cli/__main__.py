"""``python -m durableflow.cli``: the same as the ``durableflow`` console script."""

from durableflow.cli import main

main()
