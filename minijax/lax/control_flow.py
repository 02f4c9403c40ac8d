"""Control flow as primitives: while_loop, cond and fori_loop.

Python's ``while`` and ``if`` run while a function is traced, so under jit they
can only branch on concrete values.  ``lax.while_loop`` and ``lax.cond`` instead
stage their bodies as jaxprs (values the bodies close over become explicit
inputs) and carry them as parameters of one equation, like ``jit`` does.  Each
transformation then transforms those jaxprs: forward mode differentiates the
body, vmap batches it, and reverse mode... is refused for while_loop, whose
number of iterations is unknown until it runs.
"""
from __future__ import annotations

import functools
import inspect
import re
from typing import Callable

import numpy as np

from minijax import dtypes
from minijax.lax import lax
from minijax.ad import (
    instantiate_zeros, is_undefined_primal, jvp_jaxpr, primitive_jvps, transpose_jaxpr,
    primitive_transposes)
from minijax.batching import move_batch_axis, vmap_flat, vmap_jaxpr, primitive_batchers
from minijax.core import Array, Primitive, Tracer, concrete_or_error, get_aval, to_array
from minijax.jaxpr import (
    Jaxpr, JaxprEqn, Var, cache_per_jaxpr, convert_constvars_jaxpr, jaxpr_as_fun)
from minijax.partial_eval import (
    PartialEvalTrace, dce_jaxpr, partial_eval_jaxpr, partial_eval_jaxpr_custom_rules,
    custom_partial_eval_rules, trace_to_jaxpr)
from minijax.pjit import compile_jaxpr, shaped_aval
from minijax.tree_util import flatten_fun, leaf_paths, tree_flatten, tree_map, tree_unflatten


def _stage(fun: Callable, in_tree, in_avals) -> tuple[Jaxpr, list, object]:
    """Stage ``fun``, a function of one pytree, to a closed-converted jaxpr (its
    constants become leading inputs), the constants and its output structure."""
    flat_fun, out_tree = flatten_fun(fun, tree_flatten((tree_unflatten(in_tree, in_avals),))[1])
    jaxpr, consts = trace_to_jaxpr(flat_fun, list(in_avals))
    return convert_constvars_jaxpr(jaxpr), consts, out_tree.get()


def _stage_flat(fun: Callable, in_avals) -> tuple[Jaxpr, list]:
    """Stage a flat function; its constants become leading inputs, returned too."""
    jaxpr, consts = trace_to_jaxpr(fun, list(in_avals))
    return convert_constvars_jaxpr(jaxpr), consts


def _stage_exact(fun: Callable, in_avals) -> Jaxpr:
    """Stage a function that only evaluates jaxprs on its inputs: no constants arise."""
    jaxpr, consts = trace_to_jaxpr(fun, list(in_avals))
    assert not consts, "a function of its inputs alone staged constants"
    return jaxpr


# ---------------------------------------------------------------------------
# while_loop.


def while_loop(cond_fun: Callable, body_fun: Callable, init_val):
    """``val = init_val; while cond_fun(val): val = body_fun(val)``, as one primitive."""
    init_flat, in_tree = tree_flatten(init_val)
    avals = [shaped_aval(x) for x in init_flat]
    cond_jaxpr, cond_consts, cond_tree = _stage(cond_fun, in_tree, avals)
    if cond_tree.num_leaves != 1 or cond_jaxpr.out_avals[0].shape != () \
            or cond_jaxpr.out_avals[0].dtype != np.dtype(bool):
        raise TypeError(f"cond_fun must return a boolean scalar, but got output type(s) "
                        f"{[a.str_short() for a in cond_jaxpr.out_avals]}.")
    body_jaxpr, body_consts, body_tree = _stage(body_fun, in_tree, avals)
    promoted = _promote_weak_carry(init_flat, avals, body_jaxpr.out_avals)
    if promoted is not None:  # stage again, at the carry's new types
        return while_loop(cond_fun, body_fun, tree_unflatten(in_tree, promoted))
    _check_carry(body_fun, in_tree, avals, body_tree, body_jaxpr.out_avals)
    outs = while_p.bind(*cond_consts, *body_consts, *init_flat,
                        cond_jaxpr=cond_jaxpr, body_jaxpr=body_jaxpr,
                        cond_nconsts=len(cond_consts), body_nconsts=len(body_consts))
    return tree_unflatten(in_tree, outs)


def _promote_weak_carry(init_flat, in_avals, out_avals) -> list | None:
    """As in JAX, a weakly typed initial value (a Python number) whose type the body
    changes takes the promoted type, so ``while_loop(c, lambda x: x + 0.5, 0)``
    carries a float32.  None when nothing is to be promoted."""
    if len(in_avals) != len(out_avals):
        return None  # the structures differ: _check_carry reports it
    mismatched = [i for i, (a, b) in enumerate(zip(in_avals, out_avals))
                  if a.weak_type and (a.shape, a.dtype) != (b.shape, b.dtype)]
    if not mismatched:
        return None
    promoted = list(init_flat)
    for i in mismatched:
        a, b = in_avals[i], out_avals[i]
        dtype, _ = dtypes.result_type((a.dtype, True), (b.dtype, b.weak_type))
        promoted[i] = lax.convert_element_type(init_flat[i], dtype)
    return promoted


def _check_carry(body_fun: Callable, in_tree, in_avals, out_tree, out_avals) -> None:
    if out_tree != in_tree:
        raise TypeError(f"while_loop body function carry input and carry output must have "
                        f"the same pytree structure, but they differ: the input is "
                        f"{in_tree} and the output is {out_tree}.")
    # JAX names each carry component by the body's parameter name and its key path.
    try:
        carry_name = next(iter(inspect.signature(body_fun).parameters), None)
    except (ValueError, TypeError):
        carry_name = None
    paths = leaf_paths(tree_unflatten(in_tree, in_avals))
    diffs = [f"{_carry_component(carry_name, path)} has type {a.str_short(False)} but the "
             f"corresponding output carry component has type {b.str_short(False)}"
             f"{_mismatch_extra(a, b)}"
             for path, a, b in zip(paths, in_avals, out_avals) if not _typematch(a, b)]
    if diffs:
        differences = _sentences(diffs, bullet_end="\n", last_lead="")
        raise TypeError(f"while_loop body function carry input and carry output must have "
                        f"equal types, but they differ:\n\n{differences}\n"
                        f"Revise the function so that all output types match the "
                        f"corresponding input types.")


def _carry_component(carry_name: str | None, path: str) -> str:
    if carry_name:
        return f"the input carry component {carry_name}{path}" if path else \
            f"the input carry {carry_name}"
    return f"the input carry at path {path}" if path else "the input carry"


def _typematch(a, b) -> bool:
    """Equal types up to weak types (JAX's ``core.typematch``)."""
    return (a.shape, a.dtype) == (b.shape, b.dtype)


def _mismatch_extra(a, b) -> str:
    """What differs between two types, as JAX's ``core.aval_mismatch_extra`` says it."""
    problems = [what for what, differs in (("the dtypes do not match", a.dtype != b.dtype),
                                           ("the shapes do not match", a.shape != b.shape))
                if differs]
    if not problems:
        return ""
    return ", so " + (problems[0] if len(problems) == 1 else
                      ", ".join(problems[:-1]) + ", and " + problems[-1])


def _sentences(diffs: list[str], bullet_end: str, last_lead: str) -> str:
    """JAX's list of differences: one sentence, or bullets (the messages of cond and
    while_loop lay the bullets out differently: ``bullet_end`` ends each but the
    last, ``last_lead`` comes before the last)."""
    if len(diffs) == 1:
        return f"{diffs[0][0].upper()}{diffs[0][1:]}.\n"
    return ("\n".join(f"  * {d};{bullet_end}" for d in diffs[:-1])
            + f"{last_lead}  * {diffs[-1]}.\n")


def _source_info(fun: Callable) -> str:
    """A function as JAX's messages name it: ``name at file:line``."""
    while isinstance(fun, functools.partial):
        fun = fun.func
    fun = inspect.unwrap(fun)
    code = getattr(fun, "__code__", None)
    if code is None:
        builtin = re.match(r"<built-in function (\S+)>", str(fun))
        return builtin.group(1) if builtin else "<unknown>"
    return f"{fun.__name__} at {code.co_filename}:{code.co_firstlineno}"


def _while_impl(*args, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    cond = compile_jaxpr(cond_jaxpr, "cond_fun")
    body = compile_jaxpr(body_jaxpr, "body_fun")
    cond_consts = args[:cond_nconsts]
    body_consts = args[cond_nconsts:cond_nconsts + body_nconsts]
    carry = args[cond_nconsts + body_nconsts:]
    while cond(*cond_consts, *carry)[0]:
        carry = body(*body_consts, *carry)
    return carry


while_p = Primitive("while")
while_p.multiple_results = True
while_p.def_impl(_while_impl)
while_p.def_abstract_eval(lambda *avals, body_jaxpr, **_: body_jaxpr.out_avals)


def _split_while_args(args, cond_nconsts, body_nconsts):
    return (args[:cond_nconsts], args[cond_nconsts:cond_nconsts + body_nconsts],
            args[cond_nconsts + body_nconsts:])


def _while_jvp(primals, tangents, *, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    """Carry (primal, tangent) pairs through the loop: the body is differentiated,
    the predicate only looks at primals."""
    tangents = [instantiate_zeros(t) for t in tangents]
    cond_consts, body_consts, carry = _split_while_args(primals, cond_nconsts, body_nconsts)
    _, body_const_dots, carry_dots = _split_while_args(tangents, cond_nconsts, body_nconsts)
    new_cond, cond_extra, new_body, body_extra = _jvp_while_jaxprs(
        cond_jaxpr, body_jaxpr, body_nconsts)
    new_cond_consts = [*cond_extra, *cond_consts]
    new_body_consts = [*body_extra, *body_consts, *body_const_dots]
    outs = while_p.bind(*new_cond_consts, *new_body_consts, *carry, *carry_dots,
                        cond_jaxpr=new_cond, body_jaxpr=new_body,
                        cond_nconsts=len(new_cond_consts), body_nconsts=len(new_body_consts))
    return outs[:len(carry)], outs[len(carry):]


@cache_per_jaxpr
def _jvp_while_jaxprs(cond_jaxpr: Jaxpr, body_jaxpr: Jaxpr, body_nconsts: int):
    body_jvp, jvp_consts, _ = jvp_jaxpr(body_jaxpr, (True,) * len(body_jaxpr.invars), True)
    carry_avals = body_jaxpr.out_avals
    num_carry, num_jc = len(carry_avals), len(jvp_consts)

    def cond(*args):  # (cond consts, carry, carry tangents)
        return jaxpr_as_fun(cond_jaxpr)(*args[:len(args) - num_carry])

    def body(*args):  # (jvp consts, consts, const tangents, carry, carry tangents)
        jc, rest = args[:num_jc], args[num_jc:]
        consts, const_dots = rest[:body_nconsts], rest[body_nconsts:2 * body_nconsts]
        carry, carry_dots = rest[2 * body_nconsts:-num_carry], rest[-num_carry:]
        return jaxpr_as_fun(body_jvp)(*jc, *consts, *carry, *const_dots, *carry_dots)

    const_avals = body_jaxpr.in_avals[:body_nconsts]
    new_cond, cond_extra = _stage_flat(cond, cond_jaxpr.in_avals + carry_avals)
    new_body, body_extra = _stage_flat(
        body, [get_aval(c) for c in jvp_consts] + const_avals * 2 + carry_avals * 2)
    return new_cond, cond_extra, new_body, [*body_extra, *jvp_consts]


def _while_batch(axis_size, vals, dims, *, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    """Run until every example's predicate is false; finished examples keep their values."""
    cond_dims, body_dims, carry_dims = _split_while_args(dims, cond_nconsts, body_nconsts)
    cond_consts, body_consts, carry = _split_while_args(vals, cond_nconsts, body_nconsts)
    carry = [move_batch_axis(axis_size, d, 0, c) for c, d in zip(carry, carry_dims)]
    new_cond, cond_extra, new_body, body_extra = _batched_while_jaxprs(
        cond_jaxpr, body_jaxpr, axis_size, tuple(cond_dims), tuple(body_dims))
    new_cond_consts = [*cond_extra, *cond_consts]
    new_body_consts = [*body_extra, *body_consts, *cond_consts]
    outs = while_p.bind(*new_cond_consts, *new_body_consts, *carry,
                        cond_jaxpr=new_cond, body_jaxpr=new_body,
                        cond_nconsts=len(new_cond_consts), body_nconsts=len(new_body_consts))
    return outs, [0] * len(outs)


@cache_per_jaxpr
def _batched_while_jaxprs(cond_jaxpr, body_jaxpr, axis_size, cond_dims, body_dims):
    num_carry = len(body_jaxpr.outvars)
    carry_dims = (0,) * num_carry
    batched_cond, cc = vmap_jaxpr(cond_jaxpr, axis_size, cond_dims + carry_dims)
    batched_body, bc = vmap_jaxpr(body_jaxpr, axis_size, body_dims + carry_dims)
    num_cc, num_bc, body_nconsts = len(cc), len(bc), len(body_dims)

    def any_lane(*args):  # (vmap consts of cond, cond consts, carry)
        (pred,) = jaxpr_as_fun(batched_cond)(*args)
        return [lax.reduce_max(pred, (0,))]

    def body(*args):  # (vmap consts of cond and body, body consts, cond consts, carry)
        cc_, bc_ = args[:num_cc], args[num_cc:num_cc + num_bc]
        rest = args[num_cc + num_bc:]
        body_consts, cond_consts = rest[:body_nconsts], rest[body_nconsts:-num_carry]
        carry = rest[-num_carry:]
        (running,) = jaxpr_as_fun(batched_cond)(*cc_, *cond_consts, *carry)
        stepped = jaxpr_as_fun(batched_body)(*bc_, *body_consts, *carry)
        # Examples whose predicate is already false keep their values.
        return [lax.select_n(lax.broadcast_in_dim(running, get_aval(new).shape, (0,)), old, new)
                for old, new in zip(carry, stepped)]

    cond_avals = [_batched_aval(a, d, axis_size)
                  for a, d in zip(cond_jaxpr.in_avals, cond_dims + carry_dims)]
    body_avals = [_batched_aval(a, d, axis_size)
                  for a, d in zip(body_jaxpr.in_avals, body_dims + carry_dims)]
    consts_avals = [get_aval(c) for c in [*cc, *bc]]
    new_cond, cond_extra = _stage_flat(any_lane, [get_aval(c) for c in cc] + cond_avals)
    new_body, body_extra = _stage_flat(
        body, consts_avals + body_avals[:body_nconsts] + cond_avals)
    return new_cond, [*cond_extra, *cc], new_body, [*body_extra, *cc, *bc]


def _batched_aval(aval, dim, axis_size):
    if dim is None:
        return aval
    return aval.update(shape=aval.shape[:dim] + (axis_size,) + aval.shape[dim:])


def _known_while(params: dict, unknowns: list[bool]) -> tuple[dict, list[bool]] | None:
    """The loop over the known carries alone, as while parameters, and which
    inputs it does not take (the unknown ones, and the initial values of carries
    that become unknown); None if the predicate itself depends on an unknown.

    A carry is unknown if its initial value is, or if the body computes it from
    an unknown: found by iterating to a fixed point, as JAX does."""
    cond_jaxpr, body_jaxpr = params["cond_jaxpr"], params["body_jaxpr"]
    cond_nconsts, body_nconsts = params["cond_nconsts"], params["body_nconsts"]
    cond_uk, body_uk, carry_uk = _split_while_args(unknowns, cond_nconsts, body_nconsts)
    carry_uk = list(carry_uk)
    while True:
        _, _, out_uk, _ = partial_eval_jaxpr(body_jaxpr, [*body_uk, *carry_uk])
        new = [a or b for a, b in zip(carry_uk, out_uk)]
        if new == carry_uk:
            break
        carry_uk = new
    cond_known, _, (pred_uk,), _ = partial_eval_jaxpr(cond_jaxpr, [*cond_uk, *carry_uk])
    if pred_uk:
        return None
    body_known = partial_eval_jaxpr(body_jaxpr, [*body_uk, *carry_uk])[0]
    num_known = carry_uk.count(False)
    trim = lambda j, n: dce_jaxpr(Jaxpr([], j.invars, j.eqns, j.outvars[:n]))  # noqa: E731
    known_params = dict(cond_jaxpr=trim(cond_known, 1), body_jaxpr=trim(body_known, num_known),
                        cond_nconsts=cond_uk.count(False), body_nconsts=body_uk.count(False))
    return known_params, [*cond_uk, *body_uk, *carry_uk]


def _while_partial_eval(trace: PartialEvalTrace, args, **params):
    """Under linearize: the known carries come from a loop over them alone, run
    now; the unknown ones from the whole loop, staged, which computes the known
    carries again (JAX does the same)."""
    split = _known_while(params, list(map(trace.is_own, args)))
    staged = trace.add_eqn(while_p, args, params, params["body_jaxpr"].out_avals)
    if split is None:
        return staged
    known_params, not_taken = split
    known_args = [x for x, u in zip(args, not_taken) if not u]
    known_outs = iter(while_p.bind_with_trace(trace.parent_trace, known_args, known_params))
    carry_uk = not_taken[len(args) - len(staged):]
    return [t if uk else next(known_outs) for t, uk in zip(staged, carry_uk)]


def _while_partial_eval_jaxpr(unks_in, eqn: JaxprEqn):
    split = _known_while(eqn.params, unks_in)
    known = None  # when the predicate is unknown, nothing is known after the loop
    if split is None:
        carry_uk = [True] * len(eqn.out_binders)
    else:
        known_params, not_taken = split
        carry_uk = not_taken[len(eqn.inputs) - len(eqn.out_binders):]
        known = JaxprEqn(while_p, [x for x, u in zip(eqn.inputs, not_taken) if not u],
                         known_params, [v for v, u in zip(eqn.out_binders, carry_uk) if not u])
    residuals = [x for x, u in zip(eqn.inputs, unks_in) if not u]
    unknown = eqn._replace(out_binders=[v if u else Var(v.aval)
                                        for v, u in zip(eqn.out_binders, carry_uk)])
    return known, unknown, carry_uk, residuals


def _while_transpose(cts, *args, **params):
    raise ValueError(
        "Reverse-mode differentiation does not work for lax.while_loop or lax.fori_loop "
        "with dynamic start/stop values. Try using lax.scan, or using fori_loop with "
        "static start/stop.")


primitive_transposes[while_p] = _while_transpose
primitive_jvps[while_p] = _while_jvp
primitive_batchers[while_p] = _while_batch
custom_partial_eval_rules[while_p] = _while_partial_eval
partial_eval_jaxpr_custom_rules[while_p] = _while_partial_eval_jaxpr


# ---------------------------------------------------------------------------
# fori_loop.


def fori_loop(lower, upper, body_fun: Callable, init_val):
    """``for i in range(lower, upper): val = body_fun(i, val)``.

    With Python int bounds the loop is unrolled as it is traced, so reverse mode
    works (JAX uses a scan there); with traced bounds it is a while_loop.
    """
    if _is_static_int(lower) and _is_static_int(upper):
        # The carry is made of arrays, as JAX's staged loop makes it, so NumPy and
        # Python values come out as Arrays even when no iteration runs.
        val = _carry_of_arrays(init_val)
        for i in range(int(lower), int(upper)):
            val = _carry_of_arrays(body_fun(_int32(i), val))
        return val

    def cond(carry):
        i, stop, _ = carry
        return lax.lt(i, stop)

    def body(carry):
        i, stop, val = carry
        return lax.add(i, _int32(1)), stop, body_fun(i, val)

    lower, upper = _as_int32(lower), _as_int32(upper)
    return while_loop(cond, body, (lower, upper, init_val))[2]


def _carry_of_arrays(carry):
    return tree_map(lambda x: x if isinstance(x, Tracer) else to_array(x), carry)


def _is_static_int(x) -> bool:
    """A bound known while tracing: a Python or NumPy int, or a concrete int array."""
    if isinstance(x, bool) or isinstance(x, Tracer):
        return False
    return np.ndim(x) == 0 and np.issubdtype(np.asarray(x).dtype, np.integer)


def _int32(i: int):
    return Array(np.asarray(i, np.int32))


def _as_int32(x):
    if isinstance(x, Tracer):
        return lax.convert_element_type(x, np.int32)
    return _int32(int(concrete_or_error(x, "fori_loop")))


# ---------------------------------------------------------------------------
# cond.


def cond(pred, true_fun: Callable, false_fun: Callable, *operands):
    """``true_fun(*operands) if pred else false_fun(*operands)``, as one primitive."""
    if get_aval(pred).shape != ():
        raise TypeError(f"Pred must be a scalar, got {pred} of shape {get_aval(pred).shape}.")
    ops_flat, in_tree = tree_flatten(operands)
    avals = [shaped_aval(x) for x in ops_flat]
    false_jaxpr, false_consts, false_tree = _stage(lambda ops: false_fun(*ops), in_tree, avals)
    true_jaxpr, true_consts, true_tree = _stage(lambda ops: true_fun(*ops), in_tree, avals)
    if true_tree != false_tree:
        raise TypeError(f"true_fun and false_fun output must have identical types, got "
                        f"{true_tree} of {[a.str_short() for a in true_jaxpr.out_avals]} and "
                        f"{false_tree} of {[a.str_short() for a in false_jaxpr.out_avals]}.")
    _check_branch_types(true_fun, false_fun, true_tree, true_jaxpr.out_avals,
                        false_jaxpr.out_avals)
    # Each branch takes every branch's constants, then the operands.
    branches = _join_consts([false_jaxpr, true_jaxpr], [false_consts, true_consts])
    index = lax.convert_element_type(pred, np.int32) if isinstance(pred, Tracer) \
        else _int32(int(bool(concrete_or_error(pred, "cond"))))
    outs = cond_p.bind(index, *false_consts, *true_consts, *ops_flat, branches=branches)
    return tree_unflatten(true_tree, outs)


def _check_branch_types(true_fun, false_fun, out_tree, true_avals, false_avals) -> None:
    paths = leaf_paths(tree_unflatten(out_tree, true_avals))
    diffs = [f"the output of true_fun{f' at path {path}' if path else ''} has type "
             f"{a.str_short(False)} but the corresponding output of false_fun has type "
             f"{b.str_short(False)}{_mismatch_extra(a, b)}"
             for path, a, b in zip(paths, true_avals, false_avals) if not _typematch(a, b)]
    if diffs:
        differences = _sentences(diffs, bullet_end="", last_lead="\n")
        raise TypeError(f"cond branches must have equal output types but they differ.\n\n"
                        f"true_fun is {_source_info(true_fun)}\n"
                        f"false_fun is {_source_info(false_fun)}\n\n{differences}\n"
                        f"Revise true_fun and/or false_fun so that all output types match.")


def _join_consts(jaxprs: list[Jaxpr], consts: list[list]) -> tuple[Jaxpr, ...]:
    """Give every branch the same inputs: all branches' constants, then its own inputs."""
    all_avals = [get_aval(c) for cs in consts for c in cs]
    joined, start = [], 0
    for jaxpr, cs in zip(jaxprs, consts):
        mine = slice(start, start + len(cs))
        n_all = len(all_avals)

        def branch(*args, jaxpr=jaxpr, mine=mine, n_all=n_all):
            return jaxpr_as_fun(jaxpr)(*args[:n_all][mine], *args[n_all:])
        joined.append(_stage_exact(branch, all_avals + jaxpr.in_avals[len(cs):]))
        start += len(cs)
    return tuple(joined)


def _cond_impl(index, *args, branches):
    return compile_jaxpr(branches[int(index)], "branch")(*args)


cond_p = Primitive("cond")
cond_p.multiple_results = True
cond_p.def_impl(_cond_impl)
cond_p.def_abstract_eval(lambda index, *avals, branches: branches[0].out_avals)


def _cond_jvp(primals, tangents, *, branches):
    index, *args = primals
    arg_dots = [instantiate_zeros(t) for t in tangents[1:]]
    everything = (True,) * len(args)
    jvps = [jvp_jaxpr(b, everything, True)[:2] for b in branches]
    jvp_branches = _join_consts(*zip(*jvps))
    consts = [c for _, cs in jvps for c in cs]
    outs = cond_p.bind(index, *consts, *args, *arg_dots, branches=jvp_branches)
    half = len(outs) // 2
    return outs[:half], outs[half:]


def _cond_batch(axis_size, vals, dims, *, branches):
    index, *args = vals
    index_dim, *arg_dims = dims
    if index_dim is None:
        batched = [vmap_jaxpr(b, axis_size, tuple(arg_dims)) for b in branches]
        new_branches = _join_consts([b for b, _ in batched], [c for _, c in batched])
        consts = [c for _, cs in batched for c in cs]
        outs = cond_p.bind(index, *consts, *args, branches=new_branches)
        return outs, [0] * len(outs)
    # A predicate per example: run both branches on every example, then select.
    results = [vmap_flat(jaxpr_as_fun(b), axis_size, list(arg_dims), list(args))
               for b in branches]
    index = move_batch_axis(axis_size, index_dim, 0, index)
    outs = []
    for per_branch in zip(*[[move_batch_axis(axis_size, d, 0, o) for o, d in zip(*r)]
                            for r in results]):
        which = lax.broadcast_in_dim(lax.ne(index, lax.full_like(index, 0)),
                                     get_aval(per_branch[0]).shape, (0,))
        outs.append(lax.select_n(which, *per_branch))
    return outs, [0] * len(outs)


def _split_cond(branches, unks_in: tuple[bool, ...]):
    """Partial evaluation of each branch, made uniform: the same unknown outputs,
    and one list of residuals (each branch fills its own, zeros elsewhere)."""
    splits = [partial_eval_jaxpr(b, list(unks_in)) for b in branches]
    out_unks = [any(u) for u in zip(*[s[2] for s in splits])]
    splits = [partial_eval_jaxpr(b, list(unks_in), out_unks) for b in branches]
    res_avals = [jk.out_avals[len(jk.outvars) - n:] for jk, _, _, n in splits]
    all_res = [a for avals in res_avals for a in avals]
    known, unknown, start = [], [], 0
    for (jaxpr_known, jaxpr_unknown, _, n), avals in zip(splits, res_avals):
        before, after = all_res[:start], all_res[start + n:]

        def known_fn(*args, jk=jaxpr_known, before=before, after=after, n=n):
            outs = jaxpr_as_fun(jk)(*args)
            own = outs[len(outs) - n:]
            zeros = lambda avals: [_staged_zeros(a) for a in avals]  # noqa: E731
            return [*outs[:len(outs) - n], *zeros(before), *own, *zeros(after)]

        def unknown_fn(*args, ju=jaxpr_unknown, start=start, n=n):
            return jaxpr_as_fun(ju)(*args[start:start + n], *args[len(all_res):])

        known_in = [a for a, u in zip(branches[0].in_avals, unks_in) if not u]
        unknown_in = [a for a, u in zip(branches[0].in_avals, unks_in) if u]
        known.append(_stage_exact(known_fn, known_in))
        unknown.append(_stage_exact(unknown_fn, all_res + unknown_in))
        start += n
    return tuple(known), tuple(unknown), out_unks, len(all_res)


def _staged_zeros(aval):
    """Zeros of ``aval`` made by broadcasting a scalar, so staging them adds no constant."""
    scalar = Array(np.zeros((), aval.dtype), aval.weak_type)
    return lax.broadcast_in_dim(scalar, aval.shape, ())


def _cond_partial_eval(trace: PartialEvalTrace, args, *, branches):
    index, *args = args
    if trace.is_own(index):
        raise ValueError("cond with an unknown predicate cannot be linearized")
    unks = tuple(map(trace.is_own, args))
    known, unknown, out_unks, num_res = _split_cond(branches, unks)
    known_vals = [x for x, u in zip(args, unks) if not u]
    outs_and_res = cond_p.bind_with_trace(trace.parent_trace, [index, *known_vals],
                                          dict(branches=known))
    num_known = len(outs_and_res) - num_res
    known_outs, residuals = outs_and_res[:num_known], outs_and_res[num_known:]
    unknown_args = [x for x, u in zip(args, unks) if u]
    unknown_outs = trace.add_eqn(cond_p, [index, *residuals, *unknown_args],
                                 dict(branches=unknown), unknown[0].out_avals)
    k, u = iter(known_outs), iter(unknown_outs)
    return [next(u) if unk else next(k) for unk in out_unks]


def _cond_partial_eval_jaxpr(unks_in, eqn: JaxprEqn):
    index_unknown, *unks = unks_in
    if index_unknown:
        raise ValueError("cond with an unknown predicate cannot be linearized")
    known, unknown, out_unks, num_res = _split_cond(eqn.params["branches"], tuple(unks))
    index, *args = eqn.inputs
    residuals = [Var(a) for a in known[0].out_avals[len(known[0].outvars) - num_res:]]
    eqn_known = JaxprEqn(cond_p, [index, *[x for x, u in zip(args, unks) if not u]],
                         dict(branches=known),
                         [v for v, u in zip(eqn.out_binders, out_unks) if not u] + residuals)
    eqn_unknown = JaxprEqn(cond_p, [index, *residuals, *[x for x, u in zip(args, unks) if u]],
                           dict(branches=unknown),
                           [v for v, u in zip(eqn.out_binders, out_unks) if u])
    return eqn_known, eqn_unknown, out_unks, [index, *residuals]


def _cond_transpose(cts, index, *args, branches):
    cts = [instantiate_zeros(ct) for ct in cts]
    undefined = tuple(is_undefined_primal(a) for a in args)
    transposed = [transpose_jaxpr(b, undefined) for b in branches]
    new_branches = _join_consts([t for t, _ in transposed], [c for _, c in transposed])
    consts = [c for _, cs in transposed for c in cs]
    residuals = [a for a in args if not is_undefined_primal(a)]
    outs = iter(cond_p.bind(index, *consts, *residuals, *cts, branches=new_branches))
    return [None] + [next(outs) if u else None for u in undefined]


primitive_jvps[cond_p] = _cond_jvp
primitive_batchers[cond_p] = _cond_batch
custom_partial_eval_rules[cond_p] = _cond_partial_eval
partial_eval_jaxpr_custom_rules[cond_p] = _cond_partial_eval_jaxpr
primitive_transposes[cond_p] = _cond_transpose
