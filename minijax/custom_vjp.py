"""custom_vjp: a function whose backward pass is a rule you write.

A ``custom_vjp`` function has two rules: ``fwd`` computes the output and the
*residuals* the backward pass will need, and ``bwd`` maps residuals and an
output cotangent to input cotangents.  Calling it binds ``custom_vjp_call``:

- evaluation, staging and batching treat it like ``custom_jvp_call`` (they run,
  record or batch ``fun``, keeping the rules for later);
- forward mode runs ``fwd`` for the primal output, and for the tangent emits
  ``custom_lin``: a linear primitive whose *transpose* is ``bwd``.  Under
  ``grad`` partial evaluation stages ``custom_lin`` into the linear jaxpr and
  the backward pass calls ``bwd``; under plain ``jvp`` there is no transpose,
  and evaluating ``custom_lin`` forward is the error JAX gives.
"""
from __future__ import annotations

import functools
from typing import Callable

from minijax import lax
from minijax.core import EvalTrace, Primitive, Trace, Tracer, get_aval, suspended
from minijax.custom_derivatives import (
    CLOSURE, CustomCallPrimitive, custom_call_abstract_eval, custom_call_impl,
    resolve_kwargs, stage_custom_call)
from minijax.errors import UnexpectedTracerError
from minijax.jaxpr import JaxprTrace, jaxpr_as_fun
from minijax.jvp import JVPTrace, JVPTracer
from minijax.lax import zeros_like
from minijax.partial_eval import PartialEvalTrace
from minijax.reverse import transpose_rules, zeros_of
from minijax.tree_util import (
    Store, broadcast_prefix, flatten_fun, tree_flatten, tree_unflatten)
from minijax.vmap import (
    BatchTrace, BatchTracer, batch_to_front, move_batch_axis, not_mapped, vmap_rules)


class CustomVJPCallPrimitive(CustomCallPrimitive):
    """``custom_vjp_call``: bound with ``fun`` (or, once staged, ``call_jaxpr``),
    ``fwd`` and ``bwd`` (flat functions) and ``out_tree`` (fun's output structure)."""

    def bind_with_trace(self, trace: Trace, tracers, params):
        params = dict(params)
        fun = params.pop("fun", None) or jaxpr_as_fun(params.pop("call_jaxpr"))
        return process_custom_vjp_call[type(trace)](trace, self, fun, tracers, **params)


custom_vjp_call_p = CustomVJPCallPrimitive("custom_vjp_call")
custom_vjp_call_p.def_abstract_eval(custom_call_abstract_eval)
custom_vjp_call_p.def_impl(custom_call_impl)


# ---------------------------------------------------------------------------
# custom_lin: the tangent half of a custom_vjp call under forward mode.

_NO_JVP = "can't apply forward-mode autodiff (jvp) to a custom_vjp function."


def _no_forward_mode(*args, **params):
    raise TypeError(_NO_JVP)


custom_lin_p = Primitive("custom_lin")
custom_lin_p.multiple_results = True
custom_lin_p.def_abstract_eval(lambda *avals, out_avals, **_: list(out_avals))
custom_lin_p.def_impl(_no_forward_mode)
vmap_rules[custom_lin_p] = _no_forward_mode
# custom_lin has no JVP rule: differentiating it (jvp of jvp, say) is refused as
# for any primitive without one, with NotImplementedError, as in JAX.


def _custom_lin_transpose(cts, *args, num_res: int, bwd: Callable, out_avals):
    """The transpose of custom_lin is the user's backward rule."""
    return [None] * num_res + bwd(*args[:num_res], *cts)


transpose_rules[custom_lin_p] = _custom_lin_transpose


# ---------------------------------------------------------------------------
# How each kind of trace processes the call.


def _eval_call(trace, primitive, fun, tracers, **_):
    return fun(*tracers)


def _jvp_call(trace, primitive, fun, tracers, *, fwd, bwd, out_tree, name):
    primals = [t.primal for t in tracers]
    tangents = [t.tangent for t in tracers]
    with suspended([trace.main], CLOSURE):  # fwd sees only its arguments
        outs_and_residuals = fwd(*primals)
    num_out = out_tree.get().num_leaves
    outs, residuals = outs_and_residuals[:num_out], outs_and_residuals[num_out:]
    tangents_out = custom_lin_p.bind(
        *residuals, *tangents, num_res=len(residuals), bwd=bwd,
        out_avals=tuple(get_aval(o) for o in outs))
    return [JVPTracer(trace, p, t) for p, t in zip(outs, tangents_out)]


def _staged_call(trace, primitive, fun, tracers, *, fwd, bwd, out_tree, name):
    def with_consts(consts):
        # Closed-over constants come first; they get zero cotangents.
        num = len(consts)
        fwd_c = functools.wraps(fwd)(lambda *args: fwd(*args[num:]))
        bwd_c = functools.wraps(bwd)(lambda *args: [zeros_like(c) for c in consts] + bwd(*args))
        return dict(fwd=fwd_c, bwd=bwd_c)
    return stage_custom_call(trace, primitive, fun, tracers, dict(fwd=fwd, bwd=bwd),
                             with_consts, out_tree=out_tree, name=name)


def _partial_eval_call(trace, primitive, fun, tracers, **params):
    if all(t.pval.is_known for t in tracers):
        return primitive.bind(*[t.pval.const for t in tracers], fun=fun, **params)
    return fun(*tracers)  # unknown values are tangents: only fun's linear part matters


def _batch_call(trace, primitive, fun, tracers, *, fwd, bwd, out_tree, name):
    vals = [t.val for t in tracers]
    dims = [t.batch_dim for t in tracers]
    batch = functools.partial(batch_to_front, trace.axis_size)
    # fwd's outputs and residuals, and bwd's inputs, are all batched at axis 0,
    # so the batched rules agree with each other.
    outs = primitive.bind(*vals, fun=batch(fun, dims), fwd=batch(fwd, dims),
                          bwd=_batch_bwd(bwd, trace.axis_size, dims),
                          out_tree=out_tree, name=name)
    return [BatchTracer(trace, o, 0) for o in outs]


def _batch_bwd(bwd: Callable, axis_size: int, in_dims: list) -> Callable:
    """bwd batched at axis 0, returning each input's cotangent in the layout of
    that input: its batch axis where the input has it, or, for an input that is
    not batched (one value shared by the whole batch), the sum over the batch."""
    bwd_at_front = batch_to_front(axis_size, bwd)

    @functools.wraps(bwd)
    def bwd_batched(*residuals_and_cts):
        cts = bwd_at_front(*residuals_and_cts)
        return [lax.reduce_sum(ct, (0,)) if d is not_mapped
                else move_batch_axis(axis_size, 0, d, ct) for ct, d in zip(cts, in_dims)]
    return bwd_batched


process_custom_vjp_call: dict[type, Callable] = {
    EvalTrace: _eval_call,
    JVPTrace: _jvp_call,
    JaxprTrace: _staged_call,
    PartialEvalTrace: _partial_eval_call,
    BatchTrace: _batch_call,
}


# ---------------------------------------------------------------------------
# The user-facing decorator.


class custom_vjp:  # noqa: N801  (JAX's name)
    """Give ``fun`` a custom backward pass: ``@custom_vjp`` then ``f.defvjp(fwd, bwd)``.

    ``fwd`` has ``fun``'s signature and returns ``(output, residuals)``;
    ``bwd(residuals, output_cotangent)`` returns a tuple with one cotangent per
    argument (None for zero).  Arguments in ``nondiff_argnums`` are passed to
    ``bwd`` first and get no cotangent.
    """

    def __init__(self, fun: Callable, nondiff_argnums: tuple[int, ...] = ()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.fwd: Callable | None = None
        self.bwd: Callable | None = None

    def defvjp(self, fwd: Callable, bwd: Callable) -> None:
        self.fwd = fwd
        self.bwd = bwd

    def __call__(self, *args, **kwargs):
        name = getattr(self.fun, "__name__", "fun")
        if self.fwd is None:
            raise AttributeError(f"No VJP defined for custom_vjp function {name} using defvjp.")
        args = resolve_kwargs(self.fun, args, kwargs, name, "custom_vjp")
        nondiff = {i: args[i] for i in self.nondiff_argnums}
        _check_no_tracers(nondiff)
        dynamic = [a for i, a in enumerate(args) if i not in nondiff]
        args_flat, in_tree = tree_flatten(tuple(dynamic))
        merge = functools.partial(_merge, nondiff, len(args))
        out_tree, res_tree = Store(), Store()
        flat_fun, fun_out_tree = flatten_fun(lambda *dyn: self.fun(*merge(dyn)), in_tree)
        flat_fwd = _flatten_fwd(lambda *dyn: self.fwd(*merge(dyn)), in_tree, out_tree,
                                res_tree, name, _name(self.fwd))
        flat_bwd = _flatten_bwd(lambda res, ct: self.bwd(*nondiff.values(), res, ct),
                                tuple(dynamic), out_tree, res_tree, _name(self.bwd))
        outs = custom_vjp_call_p.bind(*args_flat, fun=_recording(flat_fun, fun_out_tree, out_tree),
                                      fwd=flat_fwd, bwd=flat_bwd, out_tree=out_tree, name=name)
        return tree_unflatten(out_tree.get(), outs)


def _name(f) -> str:
    return getattr(f, "__name__", type(f).__name__)


def _merge(nondiff: dict, count: int, dynamic) -> list:
    dynamic = iter(dynamic)
    return [nondiff[i] if i in nondiff else next(dynamic) for i in range(count)]


def _check_no_tracers(nondiff: dict) -> None:
    for value in nondiff.values():
        if any(isinstance(leaf, Tracer) for leaf in tree_flatten(value)[0]):
            raise UnexpectedTracerError(
                "Found a traced value passed as an argument to a custom_vjp function in "
                "a position indicated by nondiff_argnums as non-differentiable. Traced "
                "values cannot be passed as non-differentiable arguments to custom_vjp "
                "functions; use nondiff_argnums only for arguments that are not arrays, "
                "such as functions, and pass arrays as ordinary arguments (returning a "
                "zero cotangent for them from bwd).")


def _recording(flat_fun: Callable, fun_out_tree: Store, out_tree: Store) -> Callable:
    """fun, also recording its output structure where the rules look for it."""
    @functools.wraps(flat_fun)
    def run(*args):
        outs = flat_fun(*args)
        out_tree.set(fun_out_tree.get())
        return outs
    return run


def _flatten_fwd(fwd: Callable, in_tree, out_tree: Store, res_tree: Store,
                 primal_name: str, fwd_name: str) -> Callable:
    def flat_fwd(*args):
        pair = fwd(*tree_unflatten(in_tree, args))
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise TypeError(f"Custom VJP fwd rule {fwd_name} for function {primal_name} "
                            f"must produce a pair (list or tuple of length two) where the "
                            f"first element represents the primal output and the second "
                            f"the residuals, but got {pair}.")
        outs, tree = tree_flatten(pair[0])
        residuals, residual_tree = tree_flatten(pair[1])
        if out_tree.is_set() and out_tree.get() != tree:
            raise TypeError(f"Custom VJP fwd rule {fwd_name} for function {primal_name} "
                            f"must produce a primal output with the structure of "
                            f"{primal_name}'s output, {out_tree.get()}, but it had {tree}.")
        out_tree.set(tree)
        res_tree.set(residual_tree)
        return [*outs, *residuals]
    flat_fwd.__name__ = fwd_name
    return flat_fwd


def _flatten_bwd(bwd: Callable, primals: tuple, out_tree: Store, res_tree: Store,
                 bwd_name: str) -> Callable:
    in_avals, in_tree = [get_aval(x) for x in tree_flatten(primals)[0]], tree_flatten(primals)[1]

    def flat_bwd(*res_and_cts):
        num_res = res_tree.get().num_leaves
        residuals = tree_unflatten(res_tree.get(), res_and_cts[:num_res])
        ct = tree_unflatten(out_tree.get(), res_and_cts[num_res:])
        cts_in = bwd(residuals, ct)
        cts_in = tuple(cts_in) if isinstance(cts_in, list) else cts_in  # as JAX allows
        try:
            if not isinstance(cts_in, tuple):
                raise ValueError("not a tuple")
            leaves = broadcast_prefix(cts_in, primals)
        except ValueError:
            raise TypeError(
                f"Custom VJP bwd rule must produce an output with the same container "
                f"(pytree) structure as the args tuple of the primal function, and in "
                f"particular must produce a tuple of length equal to the number of "
                f"arguments to the primal function, but got bwd output structure "
                f"{tree_flatten(cts_in)[1]} for primal input structure {in_tree}.") from None
        return [zeros_of(aval) if ct is None else _checked(ct, aval)
                for ct, aval in zip(leaves, in_avals)]

    flat_bwd.__name__ = bwd_name
    return flat_bwd


def _checked(ct, aval):
    ct_aval = get_aval(ct)
    if ct_aval.shape != aval.shape or ct_aval.dtype != aval.dtype:
        raise ValueError(f"Custom VJP bwd rule must produce an output with the same type "
                         f"as the args tuple of the primal function, but it produced an "
                         f"output of type {ct_aval.str_short()} corresponding to an input "
                         f"of type {aval.str_short()}")
    return ct
