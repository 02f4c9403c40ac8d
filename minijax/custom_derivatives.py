"""Custom derivative rules: ``custom_jvp`` and ``custom_vjp`` (JAX's ``custom_derivatives.py``).

Calling a ``custom_jvp`` function binds ``custom_jvp_call``, a primitive that
carries two Python functions instead of a fixed operation: ``fun`` and its JVP
rule.  ``bind`` hands both to the current trace's ``process_custom_jvp_call``:

- the evaluation trace runs ``fun`` and never the rule;
- ``JVPTrace`` and ``LinearizeTrace`` run the rule on primals and tangents, in
  place of differentiating ``fun``;
- ``DynamicJaxprTrace`` (jit, make_jaxpr) records one equation that keeps
  ``fun`` as a jaxpr and the rule for later;
- ``BatchTrace`` batches both ``fun`` and the rule.

A ``custom_vjp`` function has two rules: ``fwd`` computes the output and the
*residuals* the backward pass will need, and ``bwd`` maps residuals and an
output cotangent to input cotangents.  Its ``custom_vjp_call`` is processed
like ``custom_jvp_call``, except under differentiation: there ``fwd`` gives the
output, and the tangent is ``custom_lin``, a linear primitive whose transpose
is ``bwd`` (see ``ad.py``).

Tangents known to be zero reach the rules as arrays of zeros, or, for rules
defined with ``symbolic_zeros=True``, as ``SymbolicZero`` objects, the user's view
of ``ad.Zero``.  The tangent of an integer or boolean value is always zero, of
dtype ``float0``.  ``closure_convert`` and ``custom_gradient`` are built on these.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable

import numpy as np

from minijax import dtypes
from minijax.ad import JVPTracer, Zero, _TypeOnly
from minijax.core import Primitive, ShapedArray, Trace, Tracer, get_aval
from minijax.errors import UnexpectedTracerError
from minijax.jaxpr import eval_jaxpr, jaxpr_as_fun
from minijax.partial_eval import DynamicJaxprTracer, trace_to_jaxpr, zeros_like_aval
from minijax.pjit import compile_jaxpr
from minijax.tree_util import (
    Partial, Store, broadcast_prefix, flatten_fun, leaf_paths, tree_flatten, tree_map,
    tree_leaves, tree_structure, tree_unflatten)


def forward_attr(self, name: str):
    """A custom-rule decorator around another lends it its ``def...`` methods, so
    ``@custom_vjp`` over ``@custom_vmap`` still has ``def_vmap``, as in JAX."""
    if name.startswith("def"):
        return getattr(self.fun, name)
    raise AttributeError


class CustomJVPCallPrimitive(Primitive):
    """``custom_jvp_call``: bound with ``fun`` and ``jvp`` (Python functions of
    flat arguments) before the arguments; once staged, the equation keeps
    ``call_jaxpr`` in place of ``fun``."""

    multiple_results = True

    def bind_with_trace(self, trace: Trace, args, params):
        fun, jvp, *args = args
        return trace.process_custom_jvp_call(self, fun, jvp, args, **params)

    def get_bind_params(self, params: dict) -> tuple[list, dict]:
        """How a staged equation is bound again: its jaxpr becomes ``fun``, and
        the rule must give primals of the jaxpr's output types."""
        jvp = _check_rule_primals(params["jvp"], params["call_jaxpr"].out_avals, params["name"])
        rest = {k: v for k, v in params.items() if k not in ("call_jaxpr", "jvp", "num_consts")}
        return [jaxpr_as_fun(params["call_jaxpr"]), jvp], rest


class CustomVJPCallPrimitive(Primitive):
    """``custom_vjp_call``: bound with ``fun``, ``fwd`` and ``bwd`` (flat functions)
    before the arguments, and ``out_tree`` (fun's output structure)."""

    multiple_results = True

    def bind_with_trace(self, trace: Trace, args, params):
        fun, fwd, bwd, *args = args
        return trace.process_custom_vjp_call(self, fun, fwd, bwd, args, **params)

    def get_bind_params(self, params: dict) -> tuple[list, dict]:
        # num_consts stays: differentiation must know which arguments were closed over.
        rest = {k: v for k, v in params.items() if k not in ("call_jaxpr", "fwd", "bwd")}
        return [jaxpr_as_fun(params["call_jaxpr"]), params["fwd"], params["bwd"]], rest


custom_jvp_call_p = CustomJVPCallPrimitive("custom_jvp_call")
custom_vjp_call_p = CustomVJPCallPrimitive("custom_vjp_call")
for _p in (custom_jvp_call_p, custom_vjp_call_p):
    # Evaluated in compiled code, a custom-rule call is just its function.
    _p.def_impl(lambda *args, call_jaxpr, **_: compile_jaxpr(call_jaxpr)(*args))
    _p.def_abstract_eval(lambda *avals, call_jaxpr, **_: call_jaxpr.out_avals)


# ---------------------------------------------------------------------------
# Zero tangents as rules see them.


class SymbolicZero(_TypeOnly):
    """A tangent or cotangent known to be zero, as a rule defined with
    ``symbolic_zeros=True`` receives it: no array, only a type, whose ``shape``,
    ``dtype`` and other attributes it answers for."""

    def __repr__(self):
        return "SymbolicZero"

    def __getattr__(self, name: str):
        if name == "aval":  # not set yet (while copying, say): no recursion
            raise AttributeError(name)
        return getattr(self.aval, name)

    @staticmethod
    def from_primal_value(x) -> SymbolicZero:
        return SymbolicZero(get_aval(x).to_tangent_aval())


def zero_from_primal(val, symbolic_zeros: bool = False):
    """Zero tangents for the pytree of primals ``val``: a ``SymbolicZero`` per leaf,
    or arrays of zeros (of dtype float0 for integers and booleans)."""
    return tree_map(lambda x: _zero_tangent(get_aval(x), symbolic_zeros), val)


def _zero_tangent(aval: ShapedArray, symbolic: bool):
    aval = aval.to_tangent_aval()
    return SymbolicZero(aval) if symbolic else zeros_like_aval(aval)


def _to_rule(t, aval: ShapedArray, symbolic: bool):
    """A tangent of a value of type ``aval`` as a rule receives it: ``ad.Zero``
    becomes a ``SymbolicZero`` or zeros, and the tangent of an integer, always zero,
    float0 zeros, as in JAX."""
    if type(t) is Zero or not dtypes.is_float(aval.dtype):
        return _zero_tangent(aval, symbolic)
    return t


def _from_rule(t, primal):
    """A tangent a rule returned, for the machinery: zeros of an integer, and symbolic
    zeros, become ``ad.Zero``."""
    if type(t) is SymbolicZero or not dtypes.is_float(get_aval(primal).dtype):
        return Zero(get_aval(primal))
    return t


@dataclasses.dataclass(slots=True)
class CustomVJPPrimal:
    """An argument of a ``custom_vjp`` forward rule defined with
    ``symbolic_zeros=True``: the primal ``value`` and whether it is ``perturbed``,
    that is, carries a tangent."""

    value: Any
    perturbed: bool


def custom_vjp_primal_tree_values(tree):
    """The values of a pytree of ``CustomVJPPrimal`` leaves."""
    def value(leaf):
        if type(leaf) is not CustomVJPPrimal:
            raise TypeError(f"unexpected leaf type {type(leaf)}")
        return leaf.value
    return tree_map(value, tree)


def _nondiff_argnums(fun: Callable, argnums, argnames) -> tuple[int, ...]:
    """``argnums`` and the positions of the parameters of ``fun`` named in
    ``argnames`` (those that can be passed by position), as JAX infers them."""
    names = (argnames,) if isinstance(argnames, str) else tuple(argnames)
    params = inspect.signature(fun).parameters.values() if names else ()
    named = {i for i, p in enumerate(params)
             if p.kind is p.POSITIONAL_OR_KEYWORD and p.name in names}
    return tuple(sorted(named | set(argnums)))


class _CustomDerivative:
    """What ``custom_jvp`` and ``custom_vjp`` share: ``fun``, whose name and docstring
    they take, its non-differentiable arguments, and its ``rules`` (the names of the
    attributes that hold them), not defined yet."""

    def __init__(self, fun: Callable, nondiff_argnums: tuple[int, ...] = (),
                 nondiff_argnames: tuple[str, ...] = ()):
        functools.update_wrapper(self, fun)
        self.fun = fun
        self.nondiff_argnums = _nondiff_argnums(fun, nondiff_argnums, nondiff_argnames)
        for rule in self.rules:  # not fun's, which update_wrapper may have copied
            setattr(self, rule, None)
        self.symbolic_zeros = False

    __getattr__ = forward_attr


# ---------------------------------------------------------------------------
# custom_jvp.


class custom_jvp(_CustomDerivative):  # noqa: N801  (JAX's name)
    """Give ``fun`` a custom JVP rule: ``@custom_jvp`` then ``@f.defjvp``.

    The rule takes ``(primals, tangents)``, tuples with one entry per argument,
    and returns ``(primal_out, tangent_out)``.  Arguments listed in
    ``nondiff_argnums``, or named in ``nondiff_argnames``, are not differentiated
    and are passed to the rule first.
    """

    rules = ("jvp",)

    def defjvp(self, jvp: Callable, symbolic_zeros: bool = False) -> Callable:
        """Set the rule.  With ``symbolic_zeros``, the tangent of an input that is
        not differentiated is a ``SymbolicZero`` instead of an array of zeros."""
        self.jvp, self.symbolic_zeros = jvp, symbolic_zeros
        return jvp

    def defjvps(self, *jvps: Callable | None) -> None:
        """One rule per argument, ``rule(tangent, primal_out, *primals)``, each giving
        that argument's contribution to the output tangent (None: no contribution)."""
        if self.nondiff_argnums:
            raise TypeError("Can't use ``defjvps`` with ``nondiff_argnums``.")

        def jvp(primals, tangents):
            primal_out = self(*primals)
            contributions = [rule(t, primal_out, *primals)
                             for rule, t in zip(jvps, tangents) if rule is not None]
            zero = zero_from_primal(primal_out, symbolic_zeros=True)
            return primal_out, functools.reduce(_add_trees, contributions, zero)

        self.defjvp(jvp)

    def __call__(self, *args, **kwargs):
        name = getattr(self.fun, "__name__", "fun")
        if self.jvp is None:
            raise AttributeError(f"No JVP defined for custom_jvp function {name} using defjvp.")
        args = resolve_kwargs(self.fun, args, kwargs, name)
        fun, jvp, dyn_args = _bind_nondiff_args(self.fun, self.jvp, args, self.nondiff_argnums)
        args_flat, in_tree = tree_flatten(tuple(dyn_args))
        args_flat = list(map(_narrowed, args_flat))
        flat_fun, out_tree = flatten_fun(fun, in_tree)
        # Whichever of fun and the rule runs records the output structure.
        flat_jvp = _flatten_jvp(jvp, in_tree, out_tree, name,
                                getattr(self.jvp, "__name__", "jvp"), self.symbolic_zeros)
        outs = custom_jvp_call_p.bind(flat_fun, flat_jvp, *args_flat, name=name,
                                      symbolic_zeros=self.symbolic_zeros)
        return tree_unflatten(out_tree.get(), outs)


def _narrowed(x):
    """A NumPy value of a wider dtype (float64, int64) narrowed to minijax's, as JAX's
    bind narrows it: the function and its rules see float32, not float64."""
    if isinstance(x, (np.ndarray, np.generic)) and dtypes.canonicalize(x.dtype) != x.dtype:
        return np.asarray(x, dtypes.canonicalize(x.dtype))
    return x


def resolve_kwargs(fun: Callable, args: tuple, kwargs: dict, name: str,
                   decorator: str = "custom_jvp") -> tuple:
    """Keyword arguments and defaults, turned into positional arguments."""
    try:
        bound = inspect.signature(fun).bind(*args, **kwargs)
        bound.apply_defaults()
        # A keyword-only parameter cannot travel as a flat argument of the call. One
        # left to its default is fine: fun is called without it and supplies it itself.
        passed = [k for k in bound.kwargs if k in kwargs]
        if passed:
            raise TypeError(f"The following keyword arguments could not be resolved to "
                            f"positions: {', '.join(passed)}")
    except TypeError as e:
        raise TypeError(f"The input arguments to the {decorator}-decorated function {name} "
                        f"could not be resolved to positional-only arguments. Binding "
                        f"failed with the error:\n{e}") from e
    return bound.args


def _bind_nondiff_args(fun, jvp, args, nondiff_argnums):
    """Give the non-differentiable arguments to ``fun`` in place and to the rule
    first, as JAX does.  Those holding traced values still travel as arguments of
    the call (so jit and vmap see them), but the rule gets only their values: their
    tangents are never used, so their derivative is zero.  The others (functions,
    Python numbers) are fixed into both."""
    traced = [i for i in nondiff_argnums if _holds_tracers(args[i])]
    fixed = {i: args[i] for i in nondiff_argnums if i not in traced}
    diff = [i for i in range(len(args)) if i not in nondiff_argnums]
    n = len(traced)

    def fun_dyn(*dyn):  # dyn: the traced non-differentiable values, then the others
        return fun(*_merge({**fixed, **dict(zip(traced, dyn[:n]))}, len(args), dyn[n:]))

    def jvp_dyn(primals, tangents):
        nondiff = {**fixed, **dict(zip(traced, primals[:n]))}
        return jvp(*[nondiff[i] for i in sorted(nondiff)], primals[n:], tangents[n:])

    return fun_dyn, jvp_dyn, [args[i] for i in traced] + [args[i] for i in diff]


def _holds_tracers(x) -> bool:
    return any(isinstance(leaf, Tracer) for leaf in tree_leaves(x))


def _flatten_jvp(jvp: Callable, in_tree, out_tree: Store, primal_name: str,
                 jvp_name: str, symbolic_zeros: bool) -> Callable:
    """The rule as a function of flat primals and tangents, checking what it returns."""
    must = f"Custom JVP rule {jvp_name} for function {primal_name} must produce"

    def flat_jvp(*primals_and_tangents):
        n = len(primals_and_tangents) // 2
        primals_in = primals_and_tangents[:n]
        tangents_in = [_to_rule(t, get_aval(p), symbolic_zeros)
                       for t, p in zip(primals_and_tangents[n:], primals_in)]
        pair = _pair(jvp(tree_unflatten(in_tree, primals_in), tree_unflatten(in_tree, tangents_in)),
                     must, "representing primal and tangent outputs")
        primals_out, primal_tree = tree_flatten(pair[0])
        tangents_out, tangent_tree = tree_flatten(pair[1])
        if primal_tree != tangent_tree:
            raise TypeError(f"{must} primal and tangent outputs with equal container (pytree) "
                            f"structures, but got {primal_tree} and {tangent_tree} respectively.")
        if out_tree.is_set() and out_tree.get() != primal_tree:
            raise TypeError(f"{must} a pair whose first element has the output structure of "
                            f"{primal_name}, {out_tree.get()}, but it had {primal_tree}.")
        _check_tangent_types([get_aval(p) for p in primals_out],
                             [t.aval if type(t) is SymbolicZero else get_aval(t)
                              for t in tangents_out])
        out_tree.set(primal_tree)
        return [*primals_out, *map(_from_rule, tangents_out, primals_out)]

    flat_jvp.__name__ = jvp_name
    return flat_jvp


def _pair(result, must: str, what: str):
    """What a rule returned, which must be a pair (JAX's error otherwise)."""
    if not isinstance(result, (list, tuple)) or len(result) != 2:
        raise TypeError(f"{must} a pair (list or tuple of length two) {what}, but got {result}.")
    return result


def _check_tangent_types(primals: list, tangents: list) -> None:
    """Each output tangent must have the type of its primal's tangents."""
    wrong = [(p, p.to_tangent_aval(), t) for p, t in zip(primals, tangents)
             if (p.shape, p.to_tangent_aval().dtype) != (t.shape, t.dtype)]
    message = ("Custom JVP rule must produce primal and tangent outputs with corresponding "
               "shapes and dtypes")
    if wrong and len(primals) == 1:
        (p, expected, t), = wrong
        raise TypeError(f"{message}. Expected {expected.str_short(False)} (tangent type of "
                        f"{p.str_short(False)}) but got {t.str_short(False)}.")
    if wrong:
        raise TypeError(f"{message}, but got:\n" + "\n".join(
            f"  primal {p.str_short(False)} with tangent {t.str_short(False)}, expecting "
            f"tangent {expected.str_short(False)}" for p, expected, t in wrong))


def _check_rule_primals(jvp: Callable, out_avals: list, name: str) -> Callable:
    """The rule of a staged function, checking that its primal outputs have the
    function's output types (known only once the function has been staged)."""
    @functools.wraps(jvp)
    def checked_jvp(*primals_and_tangents):
        outs = jvp(*primals_and_tangents)
        rule_avals = [get_aval(p) for p in outs[:len(outs) // 2]]
        if [(a.shape, a.dtype) for a in rule_avals] != [(a.shape, a.dtype) for a in out_avals]:
            raise TypeError(
                f"Custom JVP rule {jvp.__name__} for function {name} must produce a pair "
                f"(list or tuple of length two) where the first element represents the "
                f"primal output (equal in value to the output of the custom_jvp-decorated "
                f"function {name}, and in particular with leaves of the same "
                f"shape/dtype), but instead the JVP rule output's first element had "
                f"shapes/dtypes of: {[a.str_short() for a in rule_avals]}, while {name} "
                f"returns {[a.str_short() for a in out_avals]}.")
        return outs
    return checked_jvp


def _add_trees(a, b):
    return tree_map(lambda x, y: y if type(x) is SymbolicZero else
                    x if type(y) is SymbolicZero else x + y, a, b)


# ---------------------------------------------------------------------------
# custom_vjp.


class custom_vjp(_CustomDerivative):  # noqa: N801  (JAX's name)
    """Give ``fun`` a custom backward pass: ``@custom_vjp`` then ``f.defvjp(fwd, bwd)``.

    ``fwd`` has ``fun``'s signature and returns ``(output, residuals)``;
    ``bwd(residuals, output_cotangent)`` returns a tuple with one cotangent per
    argument (None for zero).  Arguments in ``nondiff_argnums``, or named in
    ``nondiff_argnames``, are passed to ``bwd`` first and get no cotangent.
    """

    rules = ("fwd", "bwd")

    def defvjp(self, fwd: Callable, bwd: Callable, symbolic_zeros: bool = False) -> None:
        """Set the rules.  With ``symbolic_zeros``, ``fwd`` receives a
        ``CustomVJPPrimal`` in place of each leaf of its arguments, and ``bwd`` a
        ``SymbolicZero`` for each output cotangent known to be zero."""
        self.fwd, self.bwd, self.symbolic_zeros = fwd, bwd, symbolic_zeros

    def __call__(self, *args, **kwargs):
        name = getattr(self.fun, "__name__", "fun")
        if self.fwd is None:
            raise AttributeError(f"No VJP defined for custom_vjp function {name} using defvjp.")
        args = resolve_kwargs(self.fun, args, kwargs, name, "custom_vjp")
        nondiff = {i: args[i] for i in self.nondiff_argnums}
        _check_no_tracers(nondiff)
        dynamic = tuple(a for i, a in enumerate(args) if i not in nondiff)
        args_flat, in_tree = tree_flatten(dynamic)
        args_flat = list(map(_narrowed, args_flat))
        merge = functools.partial(_merge, nondiff, len(args))
        # fun, when it runs, records its output structure where the rules look for it.
        flat_fun, out_tree = flatten_fun(lambda *dyn: self.fun(*merge(dyn)), in_tree)
        res_tree = Store()
        flat_fwd = _flatten_fwd(lambda *dyn: self.fwd(*merge(dyn)), in_tree, out_tree,
                                res_tree, name, _name(self.fwd), self.symbolic_zeros)
        flat_bwd = _flatten_bwd(lambda res, ct: self.bwd(*nondiff.values(), res, ct),
                                dynamic, out_tree, res_tree, _name(self.bwd), self.symbolic_zeros)
        outs = custom_vjp_call_p.bind(flat_fun, flat_fwd, flat_bwd, *args_flat,
                                      out_tree=out_tree, name=name,
                                      symbolic_zeros=self.symbolic_zeros)
        return tree_unflatten(out_tree.get(), outs)


def _name(f) -> str:
    return getattr(f, "__name__", type(f).__name__)


def _merge(nondiff: dict, count: int, dynamic) -> list:
    """``count`` arguments in order: those of ``nondiff`` at their positions, the
    ``dynamic`` ones in the others."""
    dynamic = iter(dynamic)
    return [nondiff[i] if i in nondiff else next(dynamic) for i in range(count)]


def _check_no_tracers(nondiff: dict) -> None:
    if any(map(_holds_tracers, nondiff.values())):
        raise UnexpectedTracerError(
            "Found a traced value passed as an argument to a custom_vjp function in "
            "a position indicated by nondiff_argnums as non-differentiable. Traced "
            "values cannot be passed as non-differentiable arguments to custom_vjp "
            "functions; use nondiff_argnums only for arguments that are not arrays, "
            "such as functions, and pass arrays as ordinary arguments (returning a "
            "zero cotangent for them from bwd).")


def _flatten_fwd(fwd: Callable, in_tree, out_tree: Store, res_tree: Store,
                 primal_name: str, fwd_name: str, symbolic_zeros: bool) -> Callable:
    """fwd as a function of the flat primals followed by a flag per primal, true if
    it carries a tangent; it returns the flat outputs then the flat residuals."""
    must = f"Custom VJP fwd rule {fwd_name} for function {primal_name} must produce"

    def flat_fwd(*primals_and_perturbed):
        n = len(primals_and_perturbed) // 2
        args = primals_and_perturbed[:n]
        if symbolic_zeros:
            args = list(map(CustomVJPPrimal, args, primals_and_perturbed[n:]))
        pair = _pair(fwd(*tree_unflatten(in_tree, args)), must, "where the first element "
                     "represents the primal output and the second the residuals")
        outs, tree = tree_flatten(pair[0])
        residuals, residual_tree = tree_flatten(pair[1])
        if out_tree.is_set() and out_tree.get() != tree:
            raise TypeError(f"{must} a primal output with the structure of {primal_name}'s "
                            f"output, {out_tree.get()}, but it had {tree}.")
        out_tree.set(tree)
        res_tree.set(residual_tree)
        return [*outs, *residuals]
    flat_fwd.__name__ = fwd_name
    return flat_fwd


def _flatten_bwd(bwd: Callable, primals: tuple, out_tree: Store, res_tree: Store,
                 bwd_name: str, symbolic_zeros: bool) -> Callable:
    """bwd as a function of the flat residuals then output cotangents, returning an
    array per input: zeros where bwd gave None or a symbolic zero."""
    in_avals, paths = [get_aval(x) for x in tree_leaves(primals)], leaf_paths(primals)

    def flat_bwd(*res_and_cts):
        num_res = res_tree.get().num_leaves
        residuals = tree_unflatten(res_tree.get(), res_and_cts[:num_res])
        cts = [_to_rule(ct, ct.aval if type(ct) is Zero else get_aval(ct), symbolic_zeros)
               for ct in res_and_cts[num_res:]]
        cts_in = bwd(residuals, tree_unflatten(out_tree.get(), cts))
        cts_in = tuple(cts_in) if isinstance(cts_in, list) else cts_in  # as JAX allows
        try:  # only a tuple can match the arguments' tuple: anything else goes in a list
            cts_flat = broadcast_prefix(cts_in if isinstance(cts_in, tuple) else [cts_in], primals)
        except ValueError:
            raise TypeError(
                f"Custom VJP bwd rule must produce an output with the same container (pytree) "
                f"structure as the args tuple of the primal function, and in particular must "
                f"produce a tuple of length equal to the number of arguments to the primal "
                f"function, but got bwd output structure {tree_structure(cts_in)} for primal "
                f"input structure {tree_structure(primals)}.") from None
        return list(map(_checked, cts_flat, in_avals, paths))

    flat_bwd.__name__ = bwd_name
    return flat_bwd


def _checked(ct, aval: ShapedArray, path: str):
    """The cotangent bwd gave for an input of type ``aval``, checked as JAX checks
    it: any dtype of the right shape will do for a float input; an integer input's
    cotangent (float0) is zero whatever bwd says."""
    if not dtypes.is_float(aval.dtype) or ct is None:
        return zeros_like_aval(aval)
    if type(ct) is SymbolicZero:
        if (ct.shape, ct.dtype) != (aval.shape, aval.dtype):
            raise ValueError(
                f"Custom VJP bwd rule produced a SymbolicZero with a shape/dtype that does "
                f"not match the corresponding input tangent shape/dtype: at output{path} "
                f"the SymbolicZero had shape/dtype {ct.aval.str_short(False)} while the "
                f"corresponding input had shape/dtype {aval.str_short(False)}. Consider "
                f"just returning a None here instead of a SymbolicZero object.")
        return zeros_like_aval(aval)
    ct_aval = get_aval(ct)
    if ct_aval.shape != aval.shape:
        dtypes_differ = "the dtypes do not match, and " if ct_aval.dtype != aval.dtype else ""
        raise ValueError(f"Custom VJP bwd rule must produce an output with the same type "
                         f"as the args tuple of the primal function, but at output{path} "
                         f"the bwd rule produced an output of type {ct_aval.str_short(False)} "
                         f"corresponding to an input of type {aval.str_short(False)}, so "
                         f"{dtypes_differ}the shapes do not match")
    return ct


# ---------------------------------------------------------------------------
# Closure conversion, and custom_gradient.


def closure_convert(fun: Callable, *example_args) -> tuple[Callable, list]:
    """``fun``, at the types of ``example_args``, with the values it closes over
    that may be differentiated (tracers of differentiation, and float values being
    staged) turned into extra arguments: returns the converted function, which takes
    ``fun``'s arguments followed by those values, and the list of the values.

    A ``custom_vjp`` or ``custom_jvp`` function that takes a function as an argument
    can then receive the values it closes over as ordinary, differentiable arguments.
    """
    return _closure_convert(fun, example_args, _maybe_perturbed)


def _closure_convert(fun: Callable, example_args: tuple, hoist: Callable[[Any], bool]
                     ) -> tuple[Callable, list]:
    """``fun`` staged at the example arguments' types, as a function of its
    arguments followed by the constants for which ``hoist`` is true."""
    args_flat, in_tree = tree_flatten(example_args)
    flat_fun, out_tree = flatten_fun(fun, in_tree)
    jaxpr, consts = trace_to_jaxpr(flat_fun, [get_aval(x) for x in args_flat])
    hoisted = [hoist(c) for c in consts]

    def converted(*args_and_consts):
        num_args = len(args_and_consts) - sum(hoisted)
        args_flat, tree = tree_flatten(args_and_consts[:num_args])
        if tree != in_tree:
            raise TypeError(f"The inputs to the closure produced by closure_convert must "
                            f"have the same Pytree structure as the example arguments "
                            f"passed when closure_convert was called. Expected {in_tree}, "
                            f"but got {tree}")
        given = iter(args_and_consts[num_args:])
        all_consts = [next(given) if h else c for c, h in zip(consts, hoisted)]
        return tree_unflatten(out_tree.get(), eval_jaxpr(jaxpr, all_consts, *args_flat))

    return converted, [c for c, h in zip(consts, hoisted) if h]


def _maybe_perturbed(x) -> bool:
    """Whether ``x`` may carry a tangent, by JAX's rule: a differentiation tracer
    does (minijax makes none for a zero tangent), so may a staged float (it may be
    differentiated later); another tracer does if a value it holds does."""
    if isinstance(x, JVPTracer):
        return True
    if isinstance(x, DynamicJaxprTracer):
        return dtypes.is_float(x.aval.dtype)
    return isinstance(x, Tracer) and any(_maybe_perturbed(getattr(x, name))
                                         for name in type(x).__slots__)


def custom_gradient(fun: Callable) -> custom_vjp:
    """A function with a custom VJP, from one ``fun`` that returns its value and its
    VJP: ``fun(*args)`` returns ``(output, vjp)``, where ``vjp(output_cotangent)``
    gives the cotangents of the arguments (a tuple, or one value for one argument).
    The VJP may close over values ``fun`` computed: they become residuals."""
    @custom_vjp
    def wrapped_fun(*args, **kwargs):
        return fun(*args, **kwargs)[0]

    def fwd(*args, **kwargs):
        out, vjp = fun(*args, **kwargs)
        converted, residuals = _closure_convert(vjp, (out,), lambda _: True)
        return out, (Partial(converted), residuals)

    def bwd(res, cotangent):
        vjp, residuals = res
        cts = vjp(cotangent, *residuals)
        return (cts,) if tree_structure(cts).node_type is None else cts

    wrapped_fun.defvjp(fwd, bwd)
    return wrapped_fun
