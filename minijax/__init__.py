"""minijax: JAX's transformations, rebuilt small enough to read."""
from minijax import lax, numpy, tree_util
from minijax.core import Array
from minijax.jaxpr import make_jaxpr
from minijax.jit import jit
from minijax.jvp import jvp
from minijax.reverse import grad, linearize, value_and_grad, vjp

__all__ = ["Array", "grad", "jit", "jvp", "lax", "linearize", "make_jaxpr", "numpy",
           "tree_util", "value_and_grad", "vjp"]
