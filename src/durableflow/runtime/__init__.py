"""The runtime: the only layer that wires storage and executors together and loops over I/O."""
