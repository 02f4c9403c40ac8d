"""minijax: JAX's transformations, rebuilt small enough to read."""
from minijax import errors, lax, numpy, tree_util
from minijax.core import Array
from minijax.custom_derivatives import custom_jvp
from minijax.custom_vjp import custom_vjp
from minijax.jaxpr import make_jaxpr
from minijax.jit import jit
from minijax.jvp import jvp
from minijax.reverse import grad, linearize, value_and_grad, vjp
from minijax.vmap import vmap

__all__ = ["Array", "custom_jvp", "custom_vjp", "errors", "grad", "jit", "jvp", "lax", "linearize", "make_jaxpr",
           "numpy", "tree_util", "value_and_grad", "vjp", "vmap"]
