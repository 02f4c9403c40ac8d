"""minijax: JAX's transformations, rebuilt small enough to read."""
from minijax import lax, numpy, tree_util
from minijax.core import Array
from minijax.jaxpr import make_jaxpr
from minijax.jit import jit
from minijax.jvp import jvp

__all__ = ["Array", "jit", "jvp", "lax", "make_jaxpr", "numpy", "tree_util"]
