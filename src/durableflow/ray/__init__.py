"""Everything of durableflow that runs on Ray, the optional dependency, in one package.

- :mod:`.executor`: :class:`~durableflow.ray.executor.RayExecutor`, every task attempt a Ray
  task (``Client(executor="ray")`` constructs it by name, see
  :mod:`durableflow.client.executors`);
- :mod:`.pipeline` (with :mod:`.early` and :mod:`.graph`): the executor's early mode, where
  consumers are submitted with their upstreams' ObjectRefs and checkpoints are written in
  order, off the chain's critical path;
- :mod:`.dag`: Ray DAGs (``f.bind(...)``, ``InputNode``) converted into ours, run with Ray's
  semantics;
- :mod:`.values`: ObjectRefs inside stored values, kept as their values;
- :mod:`.packing`: DAGs as flat data, so that a deep one crosses processes;
- :mod:`.coordinator`: the cluster's detached coordinator actor, which runs workflows inside
  the cluster so that they outlive the driver;
- :mod:`.runner`: :class:`~durableflow.ray.runner.RayRunner`, the Client runner that sends
  starts and resumes to the coordinator (``Client(runner="ray")``, or ``"auto"`` as the facade
  chooses: see :mod:`durableflow.client.runners`), registered by name like the executor.
- :mod:`.actors`: virtual actors on Ray (method bodies as Ray tasks with the class's Ray options;
  calls of a Client on the Ray runner applied by the coordinator, ``run_async`` an ObjectRef),
  imported by name from :mod:`durableflow.actors`.

Only :mod:`.executor` and :mod:`.dag` import Ray at module level; this package itself imports
nothing, so ``import durableflow`` (and any module outside this package) never needs Ray. In the
import-linter layers it sits above the Client (the coordinator drives one, the runner plugs
into one), below the facade.
"""
