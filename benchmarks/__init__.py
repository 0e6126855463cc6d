"""durableflow benchmarks: ``python -m benchmarks`` (see benchmarks/README.md).

They measure and print; they never fail on a time. Targets are reported as met or missed.
"""
