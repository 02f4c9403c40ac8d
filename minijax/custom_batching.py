"""Custom batching rules: ``custom_vmap`` (JAX's ``custom_batching.py``).

Calling a ``custom_vmap`` function stages it into a jaxpr and binds
``custom_vmap_call``, an ordinary primitive whose parameters carry that jaxpr
(``call``) and the user's rule (``rule``):

- evaluated, or staged by jit, it is its jaxpr: the rule plays no part;
- its batching rule calls the user's rule on the batched arguments, with a flag
  per argument saying which are batched, in place of batching the jaxpr;
- its JVP rule binds ``custom_vmap_call`` again, on primals and tangents, with
  the JVP of the jaxpr and, as rule, the JVP of the user's rule: so ``vmap`` of
  ``jvp`` still runs the rule.  That call cannot be split into a primal and a
  tangent part, so linearization, and reverse mode, fail.
"""
from __future__ import annotations

import functools
import operator
from typing import Any, Callable

from minijax import ad, batching
from minijax.api import jvp
from minijax.core import Primitive, get_aval
from minijax.custom_derivatives import _name, forward_attr, resolve_kwargs
from minijax.jaxpr import Jaxpr, convert_constvars_jaxpr
from minijax.lax.control_flow import map as lax_map
from minijax.partial_eval import (
    custom_partial_eval_rules, partial_eval_jaxpr_custom_rules, trace_to_jaxpr)
from minijax.pjit import compile_jaxpr
from minijax.tree_util import (
    PyTreeDef, Store, flatten_fun, tree_flatten, tree_leaves, tree_map, tree_structure,
    tree_unflatten)


class custom_vmap:  # noqa: N801  (JAX's name)
    """Give ``fun`` a rule for ``vmap``: ``@custom_vmap`` then ``@f.def_vmap``.

    The rule takes ``(axis_size, in_batched, *args)``: the size of the mapped
    axis, a list with one pytree of booleans per argument saying which leaves are
    batched, and the arguments, batched ones with the batch axis first.  It returns
    ``(out, out_batched)``, with booleans of ``out``'s structure.  Under any other
    transformation, and with none, the function itself runs.
    """

    def __init__(self, fun: Callable):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.vmap_rule: Callable | None = None

    __getattr__ = forward_attr

    def def_vmap(self, vmap_rule: Callable) -> Callable:
        """Set the rule, and return it, so that ``@f.def_vmap`` decorates it."""
        self.vmap_rule = vmap_rule
        return vmap_rule

    def __call__(self, *args, **kwargs):
        name = _name(self.fun)
        args = resolve_kwargs(self.fun, args, kwargs, name, "custom_vmap")
        if not self.vmap_rule:
            raise AttributeError(f"No batching rule defined for custom_vmap function {name} "
                                 f"using def_vmap.")
        args_flat, in_tree = tree_flatten(args)
        flat_fun, out_tree = flatten_fun(self.fun, in_tree)
        jaxpr, consts = trace_to_jaxpr(flat_fun, [get_aval(x) for x in args_flat])
        # Values fun closes over lead the arguments; the rule is not given them.
        outs = custom_vmap_p.bind(*consts, *args_flat, call=convert_constvars_jaxpr(jaxpr),
                                  rule=ClosedRule(self.vmap_rule),
                                  in_tree=tree_structure((consts, args)), out_tree=out_tree.get())
        return tree_unflatten(out_tree.get(), outs)


class ShownRule(functools.partial):
    """A rule as a parameter of ``custom_vmap_call``.  It has no name of its own,
    so a printed jaxpr shows the function it holds, as JAX does."""

    def __str__(self):
        return str(self.func)


class ClosedRule(ShownRule):
    """The user's rule, given the arguments of the call without the closed-over
    values before them, which must not be batched."""

    def __call__(self, axis_size, all_in_batched, consts, args):
        consts_batched, in_batched = all_in_batched
        if any(tree_leaves(consts_batched)):
            raise AssertionError(consts_batched)
        return self.func(axis_size, list(in_batched), *args)


def call_rule(rule: ShownRule, axis_size: int, in_batched, args, original_out_tree):
    """The rule's output and its batching flags, checked to share the structure
    of the function's output."""
    out, out_batched = rule(axis_size, in_batched, *args)
    out_tree, out_batched_tree = tree_structure(out), tree_structure(out_batched)
    name = getattr(rule.func, "__name__", "<unnamed rule>")
    if out_tree != out_batched_tree:
        raise ValueError(f"structure of output value and output batching specification "
                         f"returned by custom vmap rule ({name}) do not match.\n"
                         f"Output values: {out_tree}\nBatching spec: {out_batched_tree}")
    if out_tree != original_out_tree:
        raise ValueError(f"structure of output returned by custom vmap rule ({name}) does "
                         f"not match that of original custom-vmapped function.\n"
                         f"Original output: {original_out_tree}\nRule output: {out_tree}")
    return out, out_batched


def maybe_bdim_at_front(axis_size: int, x, dim):
    """The batch axis of ``x`` moved to the front; an unbatched ``x`` as it is."""
    return x if dim is None else batching.move_batch_axis(axis_size, dim, 0, x)


# ---------------------------------------------------------------------------
# The rules of custom_vmap_call.


def custom_vmap_batching(axis_size, vals, dims, *, call, rule, in_tree, out_tree):
    args = tree_unflatten(in_tree, [maybe_bdim_at_front(axis_size, x, d)
                                    for x, d in zip(vals, dims)])
    in_batched = tree_unflatten(in_tree, [d is not None for d in dims])
    out, out_batched = call_rule(rule, axis_size, in_batched, args, out_tree)
    return tree_leaves(out), [0 if b else None for b in tree_leaves(out_batched)]


def custom_vmap_jvp(primals, tangents, *, call: Jaxpr, rule: ShownRule, in_tree, out_tree):
    def jvp_of_rule_rule(axis_size, in_batched, primals, tangents):
        # The rule is differentiated where primal and tangent are both batched; an
        # argument batched on one side only is batched by vmap around that JVP.
        batched_ps, batched_ts = in_batched
        mutually_batched = tree_map(operator.and_, batched_ps, batched_ts)
        flat_ps, flat_ts = tree_leaves(batched_ps), tree_leaves(batched_ts)
        extra_dims = ([0 if p and not t else None for p, t in zip(flat_ps, flat_ts)]
                      + [0 if t and not p else None for p, t in zip(flat_ps, flat_ts)])
        out_mutually_batched = Store()

        def to_jvp(*primals):
            out, out_batched = call_rule(rule, axis_size, mutually_batched, primals, out_tree)
            out_mutually_batched.set(out_batched)
            return out

        flat_ps_ts, tree_ps_ts = tree_flatten((primals, tangents))
        flat_jvp, out_tree2 = flatten_fun(lambda ps, ts: jvp(to_jvp, ps, ts), tree_ps_ts)
        outs, out_dims = batching.vmap_flat(flat_jvp, axis_size, extra_dims, flat_ps_ts)
        out_ps, out_ts = tree_unflatten(out_tree2.get(), [
            maybe_bdim_at_front(axis_size, o, d) for o, d in zip(outs, out_dims)])
        extra = tree_unflatten(out_tree2.get(), [d is not None for d in out_dims])
        mutual = out_mutually_batched.get()
        return (out_ps, out_ts), tree_map(operator.or_, (mutual, mutual), extra)

    tangents = [ad.instantiate_zeros(t) for t in tangents]
    jvp_call, consts, _ = ad.jvp_jaxpr(call, (True,) * len(primals), True)
    assert not consts, "the JVP of a jaxpr without constants staged constants"
    outs = custom_vmap_p.bind(*primals, *tangents, call=jvp_call, rule=ShownRule(jvp_of_rule_rule),
                              in_tree=PyTreeDef(tuple, None, (in_tree, in_tree)),
                              out_tree=PyTreeDef(tuple, None, (out_tree, out_tree)))
    return outs[:len(outs) // 2], outs[len(outs) // 2:]


def no_linearization(*args, **params):
    """Splitting a call with unknown tangents into known and unknown parts: its JVP,
    one call, gives no primal output without the tangents, so there is none."""
    raise ValueError("Linearization failed to produce known values for all output primals. "
                     "This is typically caused by attempting to differentiate a function "
                     "uses an operation that does not support reverse-mode autodiff.")


custom_vmap_p = Primitive("custom_vmap_call")
custom_vmap_p.multiple_results = True
custom_vmap_p.def_impl(lambda *args, call, **_: compile_jaxpr(call)(*args))
custom_vmap_p.def_abstract_eval(lambda *avals, call, **_: call.out_avals)
batching.primitive_batchers[custom_vmap_p] = custom_vmap_batching
ad.primitive_jvps[custom_vmap_p] = custom_vmap_jvp
# Partial evaluation splits calls only under linearization (grad, vjp, linearize).
custom_partial_eval_rules[custom_vmap_p] = no_linearization
partial_eval_jaxpr_custom_rules[custom_vmap_p] = no_linearization


# ---------------------------------------------------------------------------
# An application.


def sequential_vmap(f: Callable) -> custom_vmap:
    """``f`` batched by running it once per example, in a ``lax.map`` (a scan
    that traces ``f`` once), and stacking the results: for a function with no
    batched form of its own."""
    f = custom_vmap(f)

    @f.def_vmap
    def rule(axis_size: int, in_batched: list, *args) -> tuple[Any, Any]:
        flat_args, tree = tree_flatten(list(args))
        flat_batched = tree_leaves(in_batched)

        def one_example(mapped: list):
            examples = iter(mapped)
            return f(*tree_unflatten(tree, [next(examples) if batched else x
                                            for x, batched in zip(flat_args, flat_batched)]))

        out = lax_map(one_example, [x for x, b in zip(flat_args, flat_batched) if b])
        return out, tree_map(lambda _: True, out)

    return f
