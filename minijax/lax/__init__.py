"""minijax.lax: the primitives (``lax.lax``) and the control flow built on them
(``lax.control_flow``), gathered as JAX's ``jax.lax`` gathers its own."""
from minijax.lax.control_flow import cond, fori_loop, map, scan, while_loop
from minijax.lax.lax import (
    abs, abs_p, add, add_p, broadcast_in_dim, broadcast_in_dim_p, ceil, ceil_p,
    concatenate, concatenate_p, convert_element_type, convert_element_type_p, cos,
    cos_p, div, div_p, dot_general, dot_general_p, eq, eq_p, exp, exp_p, expm1, expm1_p,
    floor, floor_p, full_like, ge, ge_p, gt, gt_p, integer_pow, integer_pow_p, le, le_p,
    log, log1p, log1p_p, log_p, lt, lt_p, max, max_p, min, min_p, mul, mul_p, ne, ne_p,
    neg, neg_p, pad, pad_p, pow, pow_p, reduce_max, reduce_max_p, reduce_min,
    reduce_min_p, reduce_sum, reduce_sum_p, reshape, reshape_p, round, round_p,
    select_n, select_n_p, sign, sign_p, sin, sin_p, slice, slice_p, sqrt, sqrt_p,
    squeeze, squeeze_p, stop_gradient, stop_gradient_p, sub, sub_p, tan, tan_p, tanh,
    tanh_p, transpose, transpose_p,
    zeros_like,
)
