"""The sponsor's side of a task: build and pin the initial adapter, create the task, fund it.

:mod:`sponsor.task` holds it; the node's own protocol (join, train, commit, claim) stays in
:mod:`fl_node.node`.
"""

__all__ = ["task"]  # the public modules
