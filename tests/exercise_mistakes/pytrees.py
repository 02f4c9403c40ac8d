"""Wrong answers to the exercise of "Pytrees"."""

import minijax.numpy as jnp
from minijax import custom_vjp


def to_cartesian_without_rule(p):
    """No rule: right derivatives, but from autodiff of the body, so jvp works."""
    r, theta = p["r"], p["theta"]
    return {"x": r * jnp.cos(theta), "y": r * jnp.sin(theta)}


def _fwd(p):
    r, cos, sin = p["r"], jnp.cos(p["theta"]), jnp.sin(p["theta"])
    return {"x": r * cos, "y": r * sin}, (r, cos, sin)


def _cotangents(res, g):
    r, cos, sin = res
    return g["x"] * cos + g["y"] * sin, r * (g["y"] * cos - g["x"] * sin)


to_cartesian_bare_dict = custom_vjp(to_cartesian_without_rule)
# The dict of cotangents is returned as it is, not in a tuple with one entry per
# argument of to_cartesian.
to_cartesian_bare_dict.defvjp(
    _fwd, lambda res, g: dict(zip(["r", "theta"], _cotangents(res, g))))

to_cartesian_output_keys = custom_vjp(to_cartesian_without_rule)
# The cotangents carry the keys of the output, "x" and "y", not those of the input.
to_cartesian_output_keys.defvjp(
    _fwd, lambda res, g: (dict(zip(["x", "y"], _cotangents(res, g))),))


def _bwd_wrong_sign(res, g):
    r, cos, sin = res
    r_bar = g["x"] * cos + g["y"] * sin
    theta_bar = r * (g["y"] * cos + g["x"] * sin)  # d(r cos) / d(theta) is -r sin
    return ({"r": r_bar, "theta": theta_bar},)


to_cartesian_wrong_sign = custom_vjp(to_cartesian_without_rule)
to_cartesian_wrong_sign.defvjp(_fwd, _bwd_wrong_sign)

MISTAKES = {
    "check_to_cartesian": [to_cartesian_without_rule, to_cartesian_bare_dict,
                           to_cartesian_output_keys, to_cartesian_wrong_sign],
}
