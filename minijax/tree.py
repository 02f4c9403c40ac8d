"""``minijax.tree``: the pytree functions of ``tree_util`` under JAX's short names
(``tree.map`` is ``tree_util.tree_map``, and so on), as ``jax.tree`` has them."""
from minijax.tree_util import (  # noqa: F401  (re-exported under short names)
    tree_all as all, tree_broadcast as broadcast, tree_flatten as flatten, tree_leaves as leaves,
    tree_map as map, tree_reduce as reduce, tree_structure as structure,
    tree_transpose as transpose, tree_unflatten as unflatten)

__all__ = ["all", "broadcast", "flatten", "leaves", "map", "reduce", "structure", "transpose",
           "unflatten"]
