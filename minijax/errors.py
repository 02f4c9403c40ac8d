"""The exceptions minijax raises where JAX raises one of its own."""
from __future__ import annotations


class JAXTypeError(TypeError):
    """Base class of minijax's type errors, as in JAX, whose messages end with a link
    to the error's entry on JAX's page of errors."""

    def __init__(self, message: str):
        super().__init__(f"{message}\nSee https://docs.jax.dev/en/latest/errors.html"
                         f"#jax.errors.{type(self).__name__}")


class ConcretizationTypeError(JAXTypeError):
    """Python needed a concrete value, but only an abstract (traced) one existed."""


class TracerBoolConversionError(ConcretizationTypeError):
    """``bool()`` (an ``if``, ``while``, ``and``...) was applied to a traced value."""


class TracerIntegerConversionError(JAXTypeError):
    """A traced value was used as a Python integer index (``range``, indexing)."""


class TracerArrayConversionError(JAXTypeError):
    """A traced value was turned into a NumPy array."""


class UnexpectedTracerError(JAXTypeError):
    """A traced value was used after the transformation that made it had ended."""


class CustomVJPException(Exception):
    """A custom_vjp function was differentiated with respect to a value it closes over."""

    def __init__(self):
        super().__init__(
            "Detected differentiation of a custom_vjp function with respect to a "
            "closed-over value. That isn't supported because the custom VJP rule only "
            "specifies how to differentiate the custom_vjp function with respect to "
            "explicit input parameters. Try passing the closed-over value into the "
            "custom_vjp function as an argument, and adapting the custom_vjp fwd and bwd "
            "rules.")
