"""The long-running worker behind ``durableflow worker``.

A worker serves one storage. On every poll (and whenever one of its runs ends) it:

1. fires the due ticks of every schedule (each becomes a PENDING workflow ``<name>@<tick>``);
2. lists the workflows waiting for a runner: PENDING with no owner (submitted with
   ``submit`` / ``run_async(detached=True)``, or fired by a schedule) and, unless ``resume`` is
   off, RESUMABLE ones (their runner crashed or was stopped); oldest first;
3. for each, while it has room (``concurrency``) and, with ``max_running_workflows``, a slot
   (:mod:`durableflow.runtime.slots`, shared by every worker on the storage), claims the
   workflow's lease and runs it on its Client. Several workers never run one workflow twice:
   the lease has one owner;
4. drains the mailboxes of virtual actors with pending calls (``send``, or a caller that died):
   each marked actor not drained here already is drained on a small pool of threads
   (``actor_threads``) by the actors' call protocol (:mod:`durableflow.actors.runtime`: one
   writer per actor across every process, by its lease). An actor that cannot be drained here
   (its class does not import, its environment differs under ``env_policy="error"``, the
   storage failed) is retried with a growing delay (2, 4, 8 ... up to 300 s).

A workflow that stops RESUMABLE again under this worker is retried with a growing delay
(2, 4, 8 ... up to 300 s); one that cannot be resumed here (canceled meanwhile, or refused by
the environment policy) waits 300 s before it is tried again.

Every ``prune_every`` seconds (of ``clock``; the first time at its first scan), if the storage
has a retention policy (``durableflow retention set``), the worker applies it once in a
background thread at a bounded rate (``prune_rate`` deletes per second, so that workflows keep
starting and the storage is not flooded); a failed prune is logged and retried at the next
period, never stops the worker. Shutdown does not wait for a prune: a delete it cuts short
leaves a tombstone that the next prune finishes.

The loop is in ``_loop.py``; the background prune in ``_pruning.py``.

While it serves, the worker keeps a heartbeat record in the storage
(:mod:`durableflow.runtime.workers`), so that a program submitting a workflow can tell whether
any worker will run it.

Shutdown (:meth:`Worker.shutdown`, SIGTERM in the CLI): pick up nothing more, give running
workflows ``grace`` seconds to finish, then stop the rest, leaving them RESUMABLE for the next
worker; then delete the heartbeat. Task functions must be importable in the worker (same
module path; the CLI adds the current directory to ``sys.path``) unless they were pickled by
value (defined in ``__main__``).
"""

from durableflow.worker._loop import Worker
from durableflow.worker._pruning import PRUNE_EVERY, PRUNE_RATE

__all__ = ["PRUNE_EVERY", "PRUNE_RATE", "Worker"]
