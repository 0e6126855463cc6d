"""The implementation of the ``ray.workflow``-shaped facade.

Its public face is :mod:`durableflow.workflow`, which re-exports every function here.

- :mod:`.default`: the default Client behind the module functions (``init``, ``client``,
  ``shutdown``), the one documented singleton;
- :mod:`.managing`: inspecting and steering stored workflows (status, metadata, listing, cancel,
  delete, restart, fork, bulk actions, retention).

The running calls (``run``, ``resume``, ``get_output``...) stay in :mod:`durableflow.workflow`
with Ray's compatibility names. Each function is one call of the default Client; a new facade
function goes in the module of its kind and is re-exported (and listed in ``__all__``) by
:mod:`durableflow.workflow`.
"""
