"""minijax: JAX's transformations, rebuilt small enough to read."""
from minijax import errors, lax, numpy, tree_util
from minijax.api import grad, jvp, linearize, make_jaxpr, value_and_grad, vjp, vmap
from minijax.core import Array
from minijax.custom_derivatives import custom_jvp, custom_vjp
from minijax.pjit import jit
from minijax import custom_batching  # last: it is built on the modules above

__all__ = ["Array", "custom_batching", "custom_jvp", "custom_vjp", "errors", "grad", "jit", "jvp",
           "lax", "linearize", "make_jaxpr", "numpy", "tree_util", "value_and_grad", "vjp", "vmap"]
