"""Control flow as primitives: while_loop, cond, scan, and fori_loop and map on top.

Python's ``while``, ``if`` and ``for`` run while a function is traced, so under
jit they can only branch on concrete values, and a loop is unrolled: its body
traced once per iteration.  ``lax.while_loop``, ``lax.cond`` and ``lax.scan``
instead stage their bodies as jaxprs (values the bodies close over become
explicit inputs) and carry them as parameters of one equation, like ``jit``
does.  Each transformation then transforms those jaxprs: forward mode
differentiates the body, vmap batches it.  Reverse mode needs the number of
iterations in advance: scan knows it, and its transposed body runs backwards
over the residuals stacked by the forward loop; for while_loop it is refused.
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
    Zero, add_tangents, instantiate_zeros, is_undefined_primal, jvp_jaxpr, primitive_jvps,
    transpose_jaxpr, primitive_transposes)
from minijax.api import vmap
from minijax.batching import (
    move_batch_axis, vmap_flat, vmap_jaxpr, primitive_batchers)
from minijax.core import Array, Primitive, ShapedArray, Tracer, concrete_or_error, get_aval
from minijax.jaxpr import (
    Jaxpr, JaxprEqn, Var, cache_per_jaxpr, convert_constvars_jaxpr, jaxpr_as_fun)
from minijax.partial_eval import (
    PartialEvalTrace, dce_jaxpr, partial_eval_jaxpr, partial_eval_jaxpr_custom_rules,
    custom_partial_eval_rules, trace_to_jaxpr, zeros_like_aval)
from minijax.pjit import compile_jaxpr, shaped_aval
from minijax.tree_util import (
    PyTreeDef, child_keys, flatten_fun, leaf_paths, tree_flatten, tree_map, tree_unflatten)


def _stage(fun: Callable, in_tree, in_avals) -> tuple[Jaxpr, list, object]:
    """Stage ``fun``, a function of one pytree, to a closed-converted jaxpr (its
    constants become leading inputs), the constants and its output structure."""
    flat_fun, out_tree = flatten_fun(fun, tree_flatten((tree_unflatten(in_tree, in_avals),))[1])
    return (*_stage_flat(flat_fun, in_avals), out_tree.get())


def _stage_flat(fun: Callable, in_avals) -> tuple[Jaxpr, list]:
    """Stage a flat function; its constants become leading inputs, returned too."""
    jaxpr, consts = trace_to_jaxpr(fun, list(in_avals))
    return convert_constvars_jaxpr(jaxpr), consts


def _stage_exact(fun: Callable, in_avals) -> Jaxpr:
    """Stage a function that only evaluates jaxprs on its inputs: no constants arise."""
    jaxpr, consts = trace_to_jaxpr(fun, list(in_avals))
    assert not consts, "a function of its inputs alone staged constants"
    return jaxpr


def _split_args(args, n1: int, n2: int) -> tuple:
    """Three groups: the first ``n1``, the next ``n2``, the rest."""
    return args[:n1], args[n1:n1 + n2], args[n1 + n2:]


def _pick(items, flags, keep: bool = True) -> list:
    """The items whose flag is ``keep``."""
    return [x for x, f in zip(items, flags) if f == keep]


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
    promoted = _promote_or_check_carry("while_loop", body_fun, init_flat, in_tree, avals,
                                       body_tree, body_jaxpr.out_avals)
    if promoted is not None:  # stage again, at the carry's new types
        return while_loop(cond_fun, body_fun, tree_unflatten(in_tree, promoted))
    outs = while_p.bind(*cond_consts, *body_consts, *init_flat,
                        cond_jaxpr=cond_jaxpr, body_jaxpr=body_jaxpr,
                        cond_nconsts=len(cond_consts), body_nconsts=len(body_consts))
    return tree_unflatten(in_tree, outs)


def _promote_or_check_carry(name: str, body_fun: Callable, init_flat: list, in_tree, in_avals,
                            out_tree, out_avals) -> list | None:
    """As in JAX, a weakly typed initial value (a Python number) whose type the body
    changes takes the promoted type, so ``while_loop(c, lambda x: x + 0.5, 0)``
    carries a float32: the initial carry so promoted, if any.  Else None, once the
    carry is checked, with JAX's errors for a body (of ``name``: while_loop or scan)
    that changes its carry."""
    if len(in_avals) == len(out_avals):  # else the structures differ: reported below
        mismatched = [a.weak_type and (a.shape, a.dtype) != (b.shape, b.dtype)
                      for a, b in zip(in_avals, out_avals)]
        if any(mismatched):
            return [lax.convert_element_type(
                x, dtypes.result_type((a.dtype, True), (b.dtype, b.weak_type))[0]) if m else x
                for x, a, b, m in zip(init_flat, in_avals, out_avals, mismatched)]
    component = _carry_namer(body_fun)
    if out_tree != in_tree:
        diffs = [f"{component(path)} is a {a} but the corresponding component of the carry "
                 f"output is a {b}, so {why}"
                 for path, a, b, why in _structure_differences(in_tree, out_tree)]
        what = "the same pytree structure"
        fix = "the carry output has the same pytree structure as the carry input"
    else:
        diffs = _type_differences(in_tree, in_avals, out_avals, component,
                                  "output carry component")
        what, fix = "equal types", "all output types match the corresponding input types"
    if diffs:
        differences = _sentences(diffs, bullet_end="\n", last_lead="")
        raise TypeError(f"{name} body function carry input and carry output must have "
                        f"{what}, but they differ:\n\n{differences}\n"
                        f"Revise the function so that {fix}.")


def _structure_differences(a: PyTreeDef, b: PyTreeDef, path: str = "") -> list:
    """Where two structures differ, as JAX's ``equality_errors`` says it: (path, what
    the first has there, what the second has, why they differ), the first difference
    down each path.  A leaf is an array's type: ShapedArray."""
    if a.node_type is None and b.node_type is None:
        return []
    if a.node_type is not b.node_type:
        return [(path, *(str(t.node_type or ShapedArray) for t in (a, b)),
                 "their Python types differ")]
    kind, n, m = str(a.node_type), len(a.children), len(b.children)
    if a.node_type in (list, tuple) and n != m:
        return [(path, *(f"{a.node_type.__name__} of length {k}" for k in (n, m)),
                 "the lengths do not match")]
    if n != m:
        extra = sorted(set(a.aux_data or ()) ^ set(b.aux_data or ()), key=repr)
        why = "the numbers of children do not match" + (
            f", with the symmetric difference of key sets: {{{' '.join(repr(k) for k in extra)}}}"
            if extra else "")
        return [(path, *(f"{kind} with {k} child{'ren' if k > 1 else ''}" for k in (n, m)), why)]
    if a.aux_data != b.aux_data:
        return [(path, *(f"{kind} with pytree metadata {t.aux_data}" for t in (a, b)),
                 "the pytree node metadata does not match")]
    return [d for key, x, y in zip(child_keys(a), a.children, b.children)
            for d in _structure_differences(x, y, path + key)]


def _carry_namer(body_fun: Callable) -> Callable[[str], str]:
    """How JAX's messages name a component of the carry, given its key path: by the
    body's parameter name, if it has one, and the path."""
    try:
        name = next(iter(inspect.signature(body_fun).parameters), None)
    except (ValueError, TypeError):
        name = None
    if name:
        return lambda path: f"the input carry component {name}{path}" if path else \
            f"the input carry {name}"
    return lambda path: f"the input carry at path {path}" if path else "the input carry"


def _type_differences(tree, avals, other_avals, first: Callable, second: str) -> list[str]:
    """The leaves whose types differ, up to weak types (JAX's ``core.typematch``), as
    JAX's messages say it: ``first(path)`` has one type, the corresponding ``second``
    the other."""
    paths = leaf_paths(tree_unflatten(tree, avals))
    return [f"{first(path)} has type {a.str_short(False)} but the corresponding {second} "
            f"has type {b.str_short(False)}{_mismatch_extra(a, b)}"
            for path, a, b in zip(paths, avals, other_avals)
            if (a.shape, a.dtype) != (b.shape, b.dtype)]


def _mismatch_extra(a, b) -> str:
    """What differs between two types that differ, as JAX's ``core.aval_mismatch_extra``
    says it."""
    return ", so " + ", and ".join(f"the {what}s do not match" for what in ("dtype", "shape")
                                   if getattr(a, what) != getattr(b, what))


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
    cond_consts, body_consts, carry = _split_args(args, cond_nconsts, body_nconsts)
    while cond(*cond_consts, *carry)[0]:
        carry = body(*body_consts, *carry)
    return carry


while_p = Primitive("while")
while_p.multiple_results = True
while_p.def_impl(_while_impl)
while_p.def_abstract_eval(lambda *avals, body_jaxpr, **_: body_jaxpr.out_avals)


def _partial_eval_rule(primitive: Primitive) -> Callable:
    """The rule of ``primitive`` under linearize, made from its rule that splits an
    equation: the known equation runs now, in the parent trace, and the unknown one
    is staged, reading the residuals the known one returned."""
    def rule(trace: PartialEvalTrace, args, **params):
        ins = [Var(get_aval(x)) for x in args]
        outs = [Var(a) for a in primitive.abstract_eval(*[v.aval for v in ins], **params)]
        known, unknown, _, _ = partial_eval_jaxpr_custom_rules[primitive](
            [trace.is_own(x) for x in args], JaxprEqn(primitive, ins, params, outs))
        env = dict(zip(ins, args))
        if known is not None:
            env.update(zip(known.out_binders, primitive.bind_with_trace(
                trace.parent_trace, [env[x] for x in known.inputs], known.params)))
        env.update(zip(unknown.out_binders, trace.add_eqn(
            primitive, [env[x] for x in unknown.inputs], unknown.params,
            [v.aval for v in unknown.out_binders])))
        return [env[v] for v in outs]
    return rule


def _register_rules(primitive: Primitive, jvp: Callable, transpose: Callable,
                    batch: Callable, split_eqn: Callable) -> None:
    """Install the rules of a primitive carrying jaxprs; its rule under linearize is
    made from ``split_eqn``, the one that splits its equations."""
    primitive_jvps[primitive] = jvp
    primitive_transposes[primitive] = transpose
    primitive_batchers[primitive] = batch
    partial_eval_jaxpr_custom_rules[primitive] = split_eqn
    custom_partial_eval_rules[primitive] = _partial_eval_rule(primitive)


def _carry_fixed_point(transform: Callable, flags, num_consts: int, num_carry: int,
                       num_ys: int = 0) -> tuple[tuple, tuple]:
    """Which carries are unknown, nonzero or batched: those whose initial value is,
    and those the body makes so from one that is.  Found as JAX does, by calling
    ``transform(in_flags, instantiate)`` (the body split, differentiated or batched,
    its result's third item the output flags) until the carry's flags stop changing.
    Returns the input flags and the last result."""
    consts, carry, xs = _split_args(tuple(flags), num_consts, num_carry)
    while True:
        result = transform((*consts, *carry, *xs), (*carry, *(False,) * num_ys))
        new = tuple(a or b for a, b in zip(carry, result[2]))
        if new == carry:
            return (*consts, *carry, *xs), result
        carry = new


def _bind_while(staged: tuple, cond_consts: list, body_consts: list, carry: list) -> list:
    """Bind while_p on the jaxprs a rule staged, ``(cond, its constants, body, its
    constants)``, whose constants come before those given here."""
    new_cond, cond_extra, new_body, body_extra = staged
    cond_consts, body_consts = [*cond_extra, *cond_consts], [*body_extra, *body_consts]
    return while_p.bind(*cond_consts, *body_consts, *carry, cond_jaxpr=new_cond,
                        body_jaxpr=new_body, cond_nconsts=len(cond_consts),
                        body_nconsts=len(body_consts))


def _while_jvp(primals, tangents, *, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    """Carry (primal, tangent) pairs through the loop: the body is differentiated,
    the predicate only looks at primals."""
    tangents = [instantiate_zeros(t) for t in tangents]
    cond_consts, body_consts, carry = _split_args(primals, cond_nconsts, body_nconsts)
    _, body_const_dots, carry_dots = _split_args(tangents, cond_nconsts, body_nconsts)
    outs = _bind_while(_jvp_while_jaxprs(cond_jaxpr, body_jaxpr, body_nconsts), cond_consts,
                       [*body_consts, *body_const_dots], [*carry, *carry_dots])
    return outs[:len(carry)], outs[len(carry):]


@cache_per_jaxpr
def _jvp_while_jaxprs(cond_jaxpr: Jaxpr, body_jaxpr: Jaxpr, body_nconsts: int):
    body_jvp, jvp_consts, _ = jvp_jaxpr(body_jaxpr, (True,) * len(body_jaxpr.invars), True)
    num_carry, num_jc = len(body_jaxpr.outvars), len(jvp_consts)
    # The body's JVP takes (jvp consts, consts, carry, their tangents); the loop puts
    # each group's tangents after it.  The predicate ignores the carry's tangents.
    ins, sizes = body_jvp.invars, [body_nconsts, num_carry]
    new_body = Jaxpr([], [*ins[:num_jc], *_regroup(ins[num_jc:], sizes, sizes)],
                     body_jvp.eqns, body_jvp.outvars)
    new_cond, cond_extra = _stage_flat(
        lambda *args: jaxpr_as_fun(cond_jaxpr)(*args[:len(args) - num_carry]),
        cond_jaxpr.in_avals + body_jaxpr.out_avals)
    return new_cond, cond_extra, new_body, jvp_consts


def _while_batch(axis_size, vals, dims, *, cond_jaxpr, body_jaxpr, cond_nconsts, body_nconsts):
    """Run until every example's predicate is false; finished examples keep their values."""
    cond_dims, body_dims, carry_dims = _split_args(dims, cond_nconsts, body_nconsts)
    cond_consts, body_consts, carry = _split_args(vals, cond_nconsts, body_nconsts)
    carry = [move_batch_axis(axis_size, d, 0, c) for c, d in zip(carry, carry_dims)]
    staged = _batched_while_jaxprs(
        cond_jaxpr, body_jaxpr, axis_size, tuple(cond_dims), tuple(body_dims))
    outs = _bind_while(staged, cond_consts, [*body_consts, *cond_consts], carry)
    return outs, [0] * len(outs)


@cache_per_jaxpr
def _batched_while_jaxprs(cond_jaxpr, body_jaxpr, axis_size, cond_dims, body_dims):
    carry_dims = (0,) * len(body_jaxpr.outvars)
    batched_cond, cc, _ = vmap_jaxpr(cond_jaxpr, axis_size, cond_dims + carry_dims)
    batched_body, bc, _ = vmap_jaxpr(body_jaxpr, axis_size, body_dims + carry_dims)
    num_cc, num_bc, body_nconsts = len(cc), len(bc), len(body_dims)

    def any_lane(*args):  # (vmap consts of cond, cond consts, carry)
        (pred,) = jaxpr_as_fun(batched_cond)(*args)
        return [lax.reduce_max(pred, (0,))]

    def body(*args):  # (vmap consts of cond and body, body consts, cond consts, carry)
        cc_, bc_, rest = _split_args(args, num_cc, num_bc)
        body_consts, cond_consts, carry = _split_args(rest, body_nconsts, len(cond_dims))
        (running,) = jaxpr_as_fun(batched_cond)(*cc_, *cond_consts, *carry)
        stepped = jaxpr_as_fun(batched_body)(*bc_, *body_consts, *carry)
        # Examples whose predicate is already false keep their values.
        return [lax.select_n(lax.broadcast_in_dim(running, get_aval(new).shape, (0,)), old, new)
                for old, new in zip(carry, stepped)]

    cond_avals = batched_cond.in_avals  # (vmap consts of cond, cond consts, carry)
    new_cond, cond_extra = _stage_flat(any_lane, cond_avals)
    new_body, body_extra = _stage_flat(body, cond_avals[:num_cc] + batched_body.in_avals[
        :num_bc + body_nconsts] + cond_avals[num_cc:])
    return new_cond, [*cond_extra, *cc], new_body, [*body_extra, *cc, *bc]


def _while_partial_eval_jaxpr(unks_in, eqn: JaxprEqn):
    """The known carries come from a loop over them alone; the unknown ones from the
    whole loop, which computes the known carries again (JAX does the same).  When the
    predicate depends on an unknown, nothing is known after the loop.

    A carry is unknown if its initial value is, or if the body computes it from
    an unknown: found by iterating to a fixed point, as JAX does."""
    params = eqn.params
    num_cc, num_bc = params["cond_nconsts"], params["body_nconsts"]
    body_uk, (body_known, *_) = _carry_fixed_point(
        functools.partial(partial_eval_jaxpr, params["body_jaxpr"]), unks_in[num_cc:], num_bc,
        len(eqn.out_binders))
    cond_uk, carry_uk = unks_in[:num_cc], body_uk[num_bc:]
    cond_known, _, (pred_uk,), _ = partial_eval_jaxpr(params["cond_jaxpr"], [*cond_uk, *carry_uk])
    residuals = _pick(eqn.inputs, unks_in, False)
    if pred_uk:
        return None, eqn, [True] * len(eqn.out_binders), residuals
    trim = lambda j, n: dce_jaxpr(Jaxpr([], j.invars, j.eqns, j.outvars[:n]))  # noqa: E731
    known_params = dict(cond_jaxpr=trim(cond_known, 1), cond_nconsts=cond_uk.count(False),
                        body_jaxpr=trim(body_known, carry_uk.count(False)),
                        body_nconsts=body_uk[:num_bc].count(False))
    known = JaxprEqn(while_p, _pick(eqn.inputs, [*cond_uk, *body_uk], False),
                     known_params, _pick(eqn.out_binders, carry_uk, False))
    unknown = eqn._replace(out_binders=[v if u else Var(v.aval)
                                        for v, u in zip(eqn.out_binders, carry_uk)])
    return known, unknown, carry_uk, residuals


def _while_transpose(cts, *args, **params):
    raise ValueError(
        "Reverse-mode differentiation does not work for lax.while_loop or lax.fori_loop "
        "with dynamic start/stop values. Try using lax.scan, or using fori_loop with "
        "static start/stop.")


_register_rules(while_p, _while_jvp, _while_transpose, _while_batch, _while_partial_eval_jaxpr)


# ---------------------------------------------------------------------------
# scan.


def scan(f: Callable, init, xs=None, length: int | None = None, reverse: bool = False,
         unroll: int | bool = 1):
    """``carry = init; for x in xs: carry, y = f(carry, x)``, returning the last
    carry and the ys stacked, as one primitive.  Its number of iterations is known
    when it is traced, so, unlike while_loop, it can be differentiated in reverse."""
    if not callable(f):
        raise TypeError("lax.scan: f argument should be a callable.")
    init_flat, init_tree = tree_flatten(init)
    xs_flat, xs_tree = tree_flatten(xs)
    length = _scan_length(xs_flat, length)
    x_avals = [shaped_aval(x).update(shape=x.shape[1:]) for x in xs_flat]
    avals = [shaped_aval(c) for c in init_flat]
    jaxpr, consts, out_tree = _stage(lambda carry_x: f(*carry_x),
                                     PyTreeDef(tuple, None, (init_tree, xs_tree)), avals + x_avals)
    if out_tree.node_type not in (tuple, list) or len(out_tree.children) != 2:
        raise TypeError(f"scan body output must be a pair, got "
                        f"{tree_unflatten(out_tree, jaxpr.out_avals)}.")
    carry_tree = out_tree.children[0]
    promoted = _promote_or_check_carry("scan", f, init_flat, init_tree, avals, carry_tree,
                                       jaxpr.out_avals[:carry_tree.num_leaves])
    if promoted is not None:  # stage again, at the carry's new types
        return scan(f, tree_unflatten(init_tree, promoted), xs, length, reverse, unroll)
    unroll = (max(length, 1) if unroll else 1) if isinstance(unroll, bool) else int(unroll)
    if unroll < 0:
        raise ValueError("`unroll` must be a `bool` or a non-negative `int`.")
    outs = _bind_scan(jaxpr, consts, init_flat, xs_flat, dict(
        length=length, reverse=bool(reverse), unroll=unroll))
    return tree_unflatten(out_tree, outs)


def _scan_length(xs_flat: list, length) -> int:
    """The number of iterations: ``length``, or the leading axis of every x."""
    try:
        lengths = [x.shape[0] for x in xs_flat]
    except AttributeError:
        raise ValueError(f"scan got value with no leading axis to scan over: "
                         f"{', '.join(str(x) for x in xs_flat if not hasattr(x, 'shape'))}."
                         ) from None
    if length is not None:
        length = int(length)
        if any(n != length for n in lengths):
            raise ValueError(f"scan got `length` argument of {length} which disagrees with "
                             f"leading axis sizes {lengths}.")
        return length
    if len(set(lengths)) > 1:
        raise ValueError(f"scan got values with different leading axis sizes: "
                         f"{', '.join(str(n) for n in lengths)}.")
    if not lengths:
        raise ValueError("scan got no values to scan over and `length` not provided.")
    return lengths[0]


def _bind_scan(jaxpr: Jaxpr, consts: list, init: list, xs: list, params: dict) -> list:
    """Bind scan_p, leaving out of the loop what the body hands back unchanged, as JAX
    does: a carry the body returns as it got it is a constant of the loop, and a y that
    is the body's x is ``xs`` itself."""
    const_ins, carry_ins, x_ins = _split_args(jaxpr.invars, len(consts), len(init))
    carry_outs, y_outs = jaxpr.outvars[:len(init)], jaxpr.outvars[len(init):]
    fixed = [o is i for o, i in zip(carry_outs, carry_ins)]
    x_index = {v: k for k, v in enumerate(x_ins)}
    y_source = [x_index.get(v) for v in y_outs]
    body = Jaxpr([], [*_pick(carry_ins, fixed), *const_ins, *_pick(carry_ins, fixed, False),
                      *x_ins], jaxpr.eqns,
                 [*_pick(carry_outs, fixed, False), *_pick(y_outs, y_source, None)])
    new_consts = [*_pick(init, fixed), *consts]
    outs = iter(scan_p.bind(*new_consts, *_pick(init, fixed, False), *xs, jaxpr=body,
                            num_consts=len(new_consts), num_carry=fixed.count(False), **params))
    carry = [c if f else next(outs) for c, f in zip(init, fixed)]
    return carry + [next(outs) if k is None else xs[k] for k in y_source]


def _scan_abstract_eval(*avals, jaxpr, length, num_carry, **_):
    return [*jaxpr.out_avals[:num_carry],
            *[a.update(shape=(length, *a.shape)) for a in jaxpr.out_avals[num_carry:]]]


def _scan_impl(*args, jaxpr, length, reverse, unroll, num_consts, num_carry):
    """A Python loop over the body's compiled code (unrolling would change nothing
    here: minijax's loops run in Python either way)."""
    body = compile_jaxpr(jaxpr, "scan_body")
    consts, carry, xs = _split_args(args, num_consts, num_carry)
    ys = [np.empty((length, *a.shape), a.dtype) for a in jaxpr.out_avals[num_carry:]]
    for i in range(length - 1, -1, -1) if reverse else range(length):
        outs = body(*consts, *carry, *[x[i] for x in xs])
        carry = outs[:num_carry]
        for y, out in zip(ys, outs[num_carry:]):
            y[i] = out
    return [*carry, *ys]


scan_p = Primitive("scan")
scan_p.multiple_results = True
scan_p.def_impl(_scan_impl)
scan_p.def_abstract_eval(_scan_abstract_eval)


def _regroup(items: list, firsts: list[int], seconds: list[int]) -> list:
    """Items laid out as groups of the first kind then groups of the second (primals,
    then tangents), put in pairs: first group, its second, next first group..."""
    a, b = iter(items[:sum(firsts)]), iter(items[sum(firsts):])
    return [next(group) for n, m in zip(firsts, seconds) for group in [a] * n + [b] * m]


def _scan_jvp(primals, tangents, *, jaxpr, num_consts, num_carry, **params):
    """Scan (primal, tangent) pairs: the tangents of consts are consts, of the carry
    carries, of xs xs.  Which carry tangents are nonzero is a fixed point."""
    num_ys = len(jaxpr.outvars) - num_carry
    nonzeros, (body, body_consts, out_nz, sizes, dot_sizes) = _carry_fixed_point(
        functools.partial(_jvp_scan_jaxpr, jaxpr, num_consts, num_carry),
        [type(t) is not Zero for t in tangents], num_consts, num_carry, num_ys)
    dots = [instantiate_zeros(t) for t, nz in zip(tangents, nonzeros) if nz]
    outs = scan_p.bind(*body_consts, *_regroup([*primals, *dots], sizes, dot_sizes), jaxpr=body,
                       num_consts=len(body_consts) + num_consts + dot_sizes[0],
                       num_carry=num_carry + dot_sizes[1], **params)
    carry, carry_dots, rest = _split_args(outs, num_carry, dot_sizes[1])
    primals_out, dots_out = [*carry, *rest[:num_ys]], iter([*carry_dots, *rest[num_ys:]])
    return primals_out, [next(dots_out) if nz else Zero.from_primal_value(p)
                         for p, nz in zip(primals_out, out_nz)]


@cache_per_jaxpr
def _jvp_scan_jaxpr(jaxpr: Jaxpr, num_consts: int, num_carry: int, nonzeros: tuple,
                    instantiate: tuple):
    """The body's JVP with its inputs and outputs in scan's order: (consts, their
    tangents, carry, its tangents, xs, their tangents) to (carry, tangents, ys, tangents)."""
    jvp, consts, out_nz = jvp_jaxpr(jaxpr, nonzeros, instantiate)
    sizes = [num_consts, num_carry, len(nonzeros) - num_consts - num_carry]
    dot_sizes = [sum(g) for g in _split_args(nonzeros, num_consts, num_carry)]
    out_sizes = [num_carry, len(jaxpr.outvars) - num_carry]
    out_dot_sizes = [sum(out_nz[:num_carry]), sum(out_nz[num_carry:])]
    invars = [*jvp.invars[:len(consts)], *_regroup(jvp.invars[len(consts):], sizes, dot_sizes)]
    body = Jaxpr([], invars, jvp.eqns, _regroup(jvp.outvars, out_sizes, out_dot_sizes))
    return body, consts, out_nz, sizes, dot_sizes


@cache_per_jaxpr
def _split_scan(jaxpr: Jaxpr, unknowns: tuple, num_consts: int, num_carry: int):
    """Partial evaluation of a scan: a known scan and an unknown one.

    A carry is unknown if its initial value is, or if the body computes it from an
    unknown (a fixed point).  The body splits into a known part, which also returns
    the residuals the unknown part needs, and the unknown part.  A residual that is a
    known constant of the loop is passed to the unknown scan as a constant; any other
    differs from one iteration to the next: the known scan stacks them (one per
    iteration, so reverse mode takes memory in proportion to the length), or, for a
    known x, the xs are passed as they are.  Returns the two bodies, which inputs the
    unknown scan takes (``unknown_in``) and which outputs it gives (``out_uk``), and
    for each residual the index of the known input it is (None: stacked by the known
    scan), constants first (``num_int`` of them)."""
    uk_in, (known, unknown, out_uk, num_res) = _carry_fixed_point(
        functools.partial(partial_eval_jaxpr, jaxpr), unknowns, num_consts, num_carry,
        len(jaxpr.outvars) - num_carry)
    num_known_out = len(known.outvars) - num_res
    residuals = known.outvars[num_known_out:]
    num_kc = uk_in[:num_consts].count(False)
    num_unscanned = uk_in[:num_consts + num_carry].count(False)
    where = {v: i for i, v in enumerate(known.invars)}
    # The known input a residual is, if it is a constant or an x; None: it is stacked.
    source = [where.get(r) for r in residuals]
    source = [None if i is None or num_kc <= i < num_unscanned else i for i in source]
    intensive = [i is not None and i < num_kc for i in source]
    known = Jaxpr([], known.invars, known.eqns,
                  known.outvars[:num_known_out] + _pick(residuals, [i is None for i in source]))
    unknown = Jaxpr([], [*_pick(residuals, intensive), *unknown.invars[num_res:],
                         *_pick(residuals, intensive, False)], unknown.eqns, unknown.outvars)
    # Staged again, so that its variables are its own, not shared with the known part.
    unknown = _stage_exact(jaxpr_as_fun(unknown), unknown.in_avals)
    return (known, unknown, uk_in, out_uk,
            _pick(source, intensive) + _pick(source, intensive, False), sum(intensive))


def _scan_partial_eval_jaxpr(unks_in, eqn: JaxprEqn):
    num_consts, num_carry = eqn.params["num_consts"], eqn.params["num_carry"]
    known, unknown, uk_in, out_uk, res_source, num_int = _split_scan(
        eqn.params["jaxpr"], tuple(unks_in), num_consts, num_carry)
    const_uk, carry_uk, _ = _split_args(uk_in, num_consts, num_carry)
    known_in = _pick(eqn.inputs, uk_in, False)
    known_params = dict(eqn.params, jaxpr=known, num_consts=const_uk.count(False),
                        num_carry=carry_uk.count(False))
    known_outs = _pick(eqn.out_binders, out_uk, False)
    known_outs += [Var(a) for a in scan_p.abstract_eval(**known_params)[len(known_outs):]]
    stacked = iter(known_outs[out_uk.count(False):])
    res = [next(stacked) if i is None else known_in[i] for i in res_source]
    unknown = JaxprEqn(scan_p, [*res[:num_int], *_pick(eqn.inputs, uk_in), *res[num_int:]],
                       dict(eqn.params, jaxpr=unknown, num_consts=num_int + sum(const_uk),
                            num_carry=sum(carry_uk)), _pick(eqn.out_binders, out_uk))
    known = JaxprEqn(scan_p, known_in, known_params, known_outs) if known_outs else None
    # A known carry that the body makes unknown is read by the unknown scan too.
    promoted = [x for x, was, now in zip(eqn.inputs, unks_in, uk_in) if now and not was]
    return known, unknown, out_uk, res + promoted


def _scan_transpose(cts, *args, jaxpr, reverse, num_consts, num_carry, **params):
    """The transposed body runs backwards over the stacked residuals: the carry's
    cotangent is carried, the cotangents of the linear consts are summed in the
    carry too, and those of the linear xs are stacked.  The residuals (the inputs
    that are not linear) are read as they are; every carry is linear."""
    undefined = [is_undefined_primal(a) for a in args]
    const_lin, _, xs_lin = _split_args(undefined, num_consts, num_carry)
    linear = (*const_lin, *(True,) * num_carry, *xs_lin)
    # As in JAX, the ys whose cotangent is a symbolic zero contribute nothing: the
    # body loses them, so their operations are not transposed (0 * inf is nan).
    ys_used = tuple(type(ct) is not Zero for ct in cts[num_carry:])
    if not all(ys_used):
        jaxpr = _without_ys(jaxpr, num_carry, ys_used)
        cts = _pick(cts, (True,) * num_carry + ys_used)
    body, body_consts = _transposed_scan_jaxpr(jaxpr, linear, num_consts, num_carry)
    residuals, num_res = _pick(args, linear, False), const_lin.count(False)
    ct_consts = [zeros_like_aval(c.aval) for c in _pick(args[:num_consts], const_lin)]
    outs = iter(scan_p.bind(
        *body_consts, *residuals[:num_res], *ct_consts, *[instantiate_zeros(ct) for ct in cts],
        *residuals[num_res:], jaxpr=body, reverse=not reverse,
        num_consts=len(body_consts) + num_res, num_carry=len(ct_consts) + num_carry, **params))
    cts_in = [next(outs) if lin else None for lin in linear]
    return [ct if u else None for ct, u in zip(cts_in, undefined)]  # a defined carry gets None


@cache_per_jaxpr
def _without_ys(jaxpr: Jaxpr, num_carry: int, ys_used: tuple) -> Jaxpr:
    """The scan body returning only the ys that ``ys_used`` keeps, and its live equations."""
    carry_out, ys = jaxpr.outvars[:num_carry], jaxpr.outvars[num_carry:]
    return dce_jaxpr(Jaxpr(jaxpr.constvars, jaxpr.invars, jaxpr.eqns,
                           carry_out + _pick(ys, ys_used)))


@cache_per_jaxpr
def _transposed_scan_jaxpr(jaxpr: Jaxpr, linear: tuple, num_consts: int, num_carry: int):
    """The transposed body as a scan body: (its constants, the residual consts, the
    sums of cotangents of linear consts, carry cotangents, y cotangents, residual xs)
    to (the sums, carry cotangents, cotangents of the linear xs)."""
    transposed, consts = transpose_jaxpr(jaxpr, linear)
    const_lin, _, xs_lin = _split_args(linear, num_consts, num_carry)
    num_res, num_sums = const_lin.count(False), sum(const_lin)

    def body(*args):  # (consts, residual consts, sums, carry cts, y cts, residual xs)
        consts_and_res, sums, rest = _split_args(args, len(consts) + num_res, num_sums)
        cts, xs_res = rest[:len(jaxpr.outvars)], rest[len(jaxpr.outvars):]
        outs = jaxpr_as_fun(transposed)(*consts_and_res, *xs_res, *cts)
        return [*[add_tangents(a, b) for a, b in zip(sums, outs)], *outs[num_sums:]]

    const_avals, _, xs_avals = _split_args(jaxpr.in_avals, num_consts, num_carry)
    new, extra = _stage_flat(body, [
        *[get_aval(c) for c in consts], *_pick(const_avals, const_lin, False),
        *_pick(const_avals, const_lin), *jaxpr.out_avals, *_pick(xs_avals, xs_lin, False)])
    return new, [*extra, *consts]


def _scan_batch(axis_size, vals, dims, *, jaxpr, num_consts, num_carry, **params):
    """Batch the body once; which carries are batched is a fixed point (a carry
    that starts unbatched stays so unless the body mixes a batched value into it).
    The xs are batched at axis 1, axis 0 being the one scanned over, as are the ys."""
    batched, (body, body_consts, out_b) = _carry_fixed_point(
        lambda b, inst: vmap_jaxpr(jaxpr, axis_size, tuple(0 if x else None for x in b), inst),
        [d is not None for d in dims], num_consts, num_carry, len(jaxpr.outvars) - num_carry)

    def axes(flags, num_unscanned):
        return [(0 if i < num_unscanned else 1) if b else None for i, b in enumerate(flags)]
    vals = [move_batch_axis(axis_size, d, t, x)
            for x, d, t in zip(vals, dims, axes(batched, num_consts + num_carry))]
    outs = scan_p.bind(*body_consts, *vals, jaxpr=body, num_carry=num_carry,
                       num_consts=len(body_consts) + num_consts, **params)
    return outs, axes(out_b, num_carry)


_register_rules(scan_p, _scan_jvp, _scan_transpose, _scan_batch, _scan_partial_eval_jaxpr)


def map(f: Callable, xs, *, batch_size: int | None = None):
    """``f`` applied to each slice of ``xs`` along its leading axis, the results
    stacked: a scan with no carry.  With ``batch_size``, each iteration applies
    ``vmap(f)`` to that many slices, and one more ``vmap(f)`` takes the remainder."""
    leaves, tree = tree_flatten(xs)
    if batch_size is None or not leaves:
        return scan(lambda _, x: ((), f(x)), (), xs)[1]
    size = leaves[0].shape[0]
    num_batches = size // batch_size if batch_size else 0
    done = num_batches * batch_size
    if not num_batches:
        return vmap(f)(tree_unflatten(tree, [x[done:] for x in leaves]))
    batches = [lax.reshape(x[:done], (num_batches, batch_size, *x.shape[1:])) for x in leaves]
    rest = [x[done:] for x in leaves] if done < size else None
    ys = scan(lambda _, x: ((), vmap(f)(x)), (), tree_unflatten(tree, batches))[1]
    unbatch = lambda y: lax.reshape(y, (done, *y.shape[2:]))  # noqa: E731
    if rest is None:
        return tree_map(unbatch, ys)
    return tree_map(lambda a, b: lax.concatenate([unbatch(a), b], 0), ys,
                    vmap(f)(tree_unflatten(tree, rest)))


# ---------------------------------------------------------------------------
# fori_loop.


def fori_loop(lower, upper, body_fun: Callable, init_val, *, unroll: int | bool | None = None):
    """``for i in range(lower, upper): val = body_fun(i, val)``.

    With bounds known while tracing it is a scan whose carry holds the index, so
    reverse mode works; with traced bounds it is a while_loop.
    """
    lower_dtype, upper_dtype = get_aval(lower).dtype, get_aval(upper).dtype
    if lower_dtype != upper_dtype:
        raise TypeError(f"lower and upper arguments to fori_loop must have equal types, got "
                        f"{lower_dtype.name} and {upper_dtype.name}")
    start, stop = _concrete_int(lower), _concrete_int(upper)
    if start is not None and stop is not None:
        def step(loop_carry, _):  # JAX's name, which its messages show
            i, val = loop_carry
            return (i + 1, body_fun(i, val)), None
        carry, _ = scan(step, (start, init_val), None, max(stop - start, 0),
                        unroll=False if unroll is None else unroll)
        return carry[1]
    if unroll is not None and unroll is not False and unroll != 1:
        raise ValueError("Can only use `unroll` in `fori_loop` if the loop bounds are "
                         "statically known.")

    def body(carry):
        i, stop, val = carry
        return lax.add(i, _int32(1)), stop, body_fun(i, val)

    return while_loop(lambda carry: lax.lt(carry[0], carry[1]), body, (lower, upper, init_val))[2]


def _concrete_int(x) -> int | None:
    """A bound known while tracing, as JAX finds one: a concrete value that int() takes."""
    try:
        return int(x)
    except TypeError:  # a tracer with no concrete value raises a ConcretizationTypeError
        return None


def _int32(i: int):
    return Array(np.asarray(i, np.int32))


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
    index = lax.convert_element_type(pred, np.int32) if isinstance(pred, Tracer) \
        else _int32(int(bool(concrete_or_error(pred, "cond"))))
    outs = _bind_cond(index, [(false_jaxpr, false_consts), (true_jaxpr, true_consts)], ops_flat)
    return tree_unflatten(true_tree, outs)


def _check_branch_types(true_fun, false_fun, out_tree, true_avals, false_avals) -> None:
    diffs = _type_differences(
        out_tree, true_avals, false_avals,
        lambda path: f"the output of true_fun{f' at path {path}' if path else ''}",
        "output of false_fun")
    if diffs:
        differences = _sentences(diffs, bullet_end="", last_lead="\n")
        raise TypeError(f"cond branches must have equal output types but they differ.\n\n"
                        f"true_fun is {_source_info(true_fun)}\n"
                        f"false_fun is {_source_info(false_fun)}\n\n{differences}\n"
                        f"Revise true_fun and/or false_fun so that all output types match.")


def _bind_cond(index, staged: list[tuple[Jaxpr, list]], args: list) -> list:
    """Bind cond_p on branches staged apart, each with its own constants: every branch
    is made to take all branches' constants, then ``args``."""
    all_consts = [c for _, cs in staged for c in cs]
    n_all, all_avals = len(all_consts), [get_aval(c) for c in all_consts]
    branches, start = [], 0
    for jaxpr, cs in staged:
        def branch(*ins, jaxpr=jaxpr, mine=slice(start, start + len(cs))):
            return jaxpr_as_fun(jaxpr)(*ins[:n_all][mine], *ins[n_all:])
        branches.append(_stage_exact(branch, all_avals + jaxpr.in_avals[len(cs):]))
        start += len(cs)
    return cond_p.bind(index, *all_consts, *args, branches=tuple(branches))


def _cond_impl(index, *args, branches):
    return compile_jaxpr(branches[int(index)], "branch")(*args)


cond_p = Primitive("cond")
cond_p.multiple_results = True
cond_p.def_impl(_cond_impl)
cond_p.def_abstract_eval(lambda index, *avals, branches: branches[0].out_avals)


def _cond_jvp(primals, tangents, *, branches):
    index, *args = primals
    jvps = [jvp_jaxpr(b, (True,) * len(args), True)[:2] for b in branches]
    outs = _bind_cond(index, jvps, [*args, *[instantiate_zeros(t) for t in tangents[1:]]])
    return outs[:len(outs) // 2], outs[len(outs) // 2:]


def _cond_batch(axis_size, vals, dims, *, branches):
    index, *args = vals
    index_dim, *arg_dims = dims
    if index_dim is None:
        outs = _bind_cond(index, [vmap_jaxpr(b, axis_size, tuple(arg_dims))[:2]
                                  for b in branches], args)
    else:  # A predicate per example: each example runs both branches, then selects.
        return vmap_flat(functools.partial(_both_branches, branches), axis_size, dims, vals)
    return outs, [0] * len(outs)


def _both_branches(branches, index, *args) -> list:
    """One example's cond as a select between both branches' results.  As in JAX, a
    branch the example does not take gets the inputs with gradients stopped: a
    derivative the branch does not define there (0 * inf) does not reach them."""
    results = [jaxpr_as_fun(b)(*[lax.select_n(lax.eq(index, _int32(i)), lax.stop_gradient(x), x)
                                 for x in args])
               for i, b in enumerate(branches)]
    return [lax.select_n(lax.ne(index, _int32(0)), *cases) for cases in zip(*results)]


def _split_cond(branches, unks_in: tuple[bool, ...]):
    """Partial evaluation of each branch, made uniform: the same unknown outputs,
    and one list of residuals (each branch fills its own, zeros elsewhere)."""
    splits = [partial_eval_jaxpr(b, list(unks_in)) for b in branches]
    out_unks = [any(u) for u in zip(*[s[2] for s in splits])]
    splits = [partial_eval_jaxpr(b, list(unks_in), out_unks) for b in branches]
    all_res = [a for jk, _, _, n in splits for a in jk.out_avals[len(jk.outvars) - n:]]
    known, unknown, start = [], [], 0
    for jaxpr_known, jaxpr_unknown, _, n in splits:
        def known_fn(*args, jk=jaxpr_known, start=start, n=n):
            outs = jaxpr_as_fun(jk)(*args)
            num_out = len(outs) - n
            return [*outs[:num_out], *[zeros_like_aval(a) for a in all_res[:start]],
                    *outs[num_out:], *[zeros_like_aval(a) for a in all_res[start + n:]]]

        def unknown_fn(*args, ju=jaxpr_unknown, start=start, n=n):
            return jaxpr_as_fun(ju)(*args[start:start + n], *args[len(all_res):])
        known.append(_stage_exact(known_fn, _pick(branches[0].in_avals, unks_in, False)))
        unknown.append(_stage_exact(unknown_fn, all_res + _pick(branches[0].in_avals, unks_in)))
        start += n
    return tuple(known), tuple(unknown), out_unks, all_res


def _cond_partial_eval_jaxpr(unks_in, eqn: JaxprEqn):
    index_unknown, *unks = unks_in
    if index_unknown:
        raise ValueError("cond with an unknown predicate cannot be linearized")
    known, unknown, out_unks, res_avals = _split_cond(eqn.params["branches"], tuple(unks))
    index, *args = eqn.inputs
    residuals = [Var(a) for a in res_avals]
    eqn_known = JaxprEqn(cond_p, [index, *_pick(args, unks, False)], dict(branches=known),
                         _pick(eqn.out_binders, out_unks, False) + residuals)
    eqn_unknown = JaxprEqn(cond_p, [index, *residuals, *_pick(args, unks)],
                           dict(branches=unknown), _pick(eqn.out_binders, out_unks))
    return eqn_known, eqn_unknown, out_unks, [index, *residuals]


def _cond_transpose(cts, index, *args, branches):
    undefined = tuple(is_undefined_primal(a) for a in args)
    ins = [*_pick(args, undefined, False), *[instantiate_zeros(ct) for ct in cts]]
    outs = iter(_bind_cond(index, [transpose_jaxpr(b, undefined) for b in branches], ins))
    return [None] + [next(outs) if u else None for u in undefined]


_register_rules(cond_p, _cond_jvp, _cond_transpose, _cond_batch, _cond_partial_eval_jaxpr)
