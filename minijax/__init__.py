"""minijax: JAX's transformations, rebuilt small enough to read."""
# lax first: the differentiation machinery is built on its primitives.
from minijax import lax  # isort: skip
from minijax import custom_derivatives, dtypes, errors, numpy, tree, tree_util
from minijax.api import grad, jvp, linearize, make_jaxpr, value_and_grad, vjp, vmap
from minijax.core import Array
from minijax.custom_derivatives import closure_convert, custom_gradient, custom_jvp, custom_vjp
from minijax.dtypes import float0
from minijax.pjit import jit
from minijax import custom_batching  # last: it is built on the modules above

__all__ = ["Array", "closure_convert", "custom_batching", "custom_derivatives", "custom_gradient",
           "custom_jvp", "custom_vjp", "dtypes", "errors", "float0", "grad", "jit", "jvp", "lax",
           "linearize", "make_jaxpr", "numpy", "tree", "tree_util", "value_and_grad", "vjp", "vmap"]
