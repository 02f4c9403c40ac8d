"""minijax: JAX's transformations, rebuilt small enough to read."""
from minijax import lax, numpy, tree_util
from minijax.core import Array
from minijax.jvp import jvp

__all__ = ["Array", "jvp", "lax", "numpy", "tree_util"]
