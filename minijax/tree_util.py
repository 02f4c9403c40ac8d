"""Pytrees: nested containers of arrays that transformations see through.

A transformation only knows flat lists of arrays.  ``tree_flatten`` turns a
pytree into its leaves plus a ``PyTreeDef`` recording the containers, and
``tree_unflatten`` puts leaves back into that structure.  Tuples, lists, dicts,
namedtuples and None are pytrees; ``register_pytree_node`` adds more types.
"""
from __future__ import annotations

import functools

from typing import Any, Callable, Hashable, Iterable, NamedTuple


class _NodeType(NamedTuple):
    to_iterable: Callable[[Any], tuple[Iterable, Hashable]]
    from_iterable: Callable[[Hashable, Iterable], Any]


_registry: dict[type, _NodeType] = {}


def register_pytree_node(nodetype: type, flatten_func: Callable, unflatten_func: Callable) -> None:
    """Make ``nodetype`` a pytree: ``flatten_func(x) -> (children, aux_data)`` and
    ``unflatten_func(aux_data, children) -> x``."""
    _registry[nodetype] = _NodeType(flatten_func, unflatten_func)


register_pytree_node(tuple, lambda t: (t, None), lambda _, xs: tuple(xs))
register_pytree_node(list, lambda l: (l, None), lambda _, xs: list(xs))


def _flatten_dict(d: dict) -> tuple[list, tuple]:
    keys = tuple(sorted(d))
    return [d[k] for k in keys], keys


register_pytree_node(dict, _flatten_dict, lambda keys, xs: dict(zip(keys, xs)))
register_pytree_node(type(None), lambda _: ((), None), lambda _, __: None)


def _node_type(kind: type) -> _NodeType | None:
    """How to take apart and rebuild a node of type ``kind``; None for a leaf."""
    node_type = _registry.get(kind)
    if node_type is None and issubclass(kind, tuple) and hasattr(kind, "_fields"):  # namedtuple
        node_type = _NodeType(lambda t: (tuple(t), None), lambda _, xs: kind(*xs))
    return node_type


class PyTreeDef:
    """The structure of a pytree: its containers, without the leaves."""

    __slots__ = ("node_type", "aux_data", "children", "_key", "_hash")

    def __init__(self, node_type: type | None, aux_data: Hashable = None,
                 children: tuple[PyTreeDef, ...] = ()):
        self.node_type = node_type  # None for a leaf
        self.aux_data = aux_data
        self.children = children
        # Structures are cache keys: jit looks one up per call.  The same structure
        # as nested tuples is hashed and compared by Python's own (C) code, with
        # no method call per node.
        self._key = (node_type, aux_data, tuple([c._key for c in children]))
        self._hash = hash(self._key)

    def __eq__(self, other):
        return self is other or (isinstance(other, PyTreeDef) and self._hash == other._hash
                                 and self._key == other._key)

    def __hash__(self):
        return self._hash

    def unflatten(self, leaves: Iterable):
        return tree_unflatten(self, leaves)

    def flatten_up_to(self, tree) -> list:
        """The subtrees of ``tree`` at the places of this structure's leaves; JAX's
        ``ValueError`` where ``tree`` lacks one of this structure's nodes."""
        if self.node_type is None:
            return [tree]
        return [sub for c, child in zip(self.children, _children_like(self, tree))
                for sub in c.flatten_up_to(child)]

    @property
    def num_leaves(self) -> int:
        return 1 if self.node_type is None else sum(c.num_leaves for c in self.children)

    def __repr__(self):
        return f"PyTreeDef({self._show()})"

    def _show(self) -> str:
        if self.node_type is None:
            return "*"
        kids = [c._show() for c in self.children]
        if self.node_type is type(None):
            return "None"
        if self.node_type is tuple:
            return f"({kids[0]},)" if len(kids) == 1 else f"({', '.join(kids)})"
        if self.node_type is list:
            return f"[{', '.join(kids)}]"
        if self.node_type is dict:
            return "{" + ", ".join(f"{k!r}: {v}" for k, v in zip(self.aux_data, kids)) + "}"
        if self.node_type not in _registry:  # a namedtuple
            return f"CustomNode(namedtuple[{self.node_type.__name__}], [{', '.join(kids)}])"
        return f"CustomNode({self.node_type.__name__}[{self.aux_data}], [{', '.join(kids)}])"


_LEAF = PyTreeDef(None)


def tree_flatten(tree, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list, PyTreeDef]:
    """The leaves of ``tree``, left to right, and its structure."""
    if is_leaf is None:  # the usual cases, made quick: a leaf, a tuple of leaves
        if type(tree) not in _registry and not isinstance(tree, tuple):
            return [tree], _LEAF
        if type(tree) is tuple and not any(
                type(x) in _registry or isinstance(x, tuple) for x in tree):
            return list(tree), _tuple_of_leaves(len(tree))
    leaves: list = []
    return leaves, _flatten_into(tree, leaves, is_leaf)


def _flatten_into(tree, leaves: list, is_leaf) -> PyTreeDef:
    # _node_type, inlined: this runs for every node of every pytree.
    kind = type(tree)
    node_def = _registry.get(kind)
    if node_def is None and isinstance(tree, tuple) and hasattr(kind, "_fields"):
        node_def = _node_type(kind)  # a namedtuple
    if node_def is None or (is_leaf is not None and is_leaf(tree)):
        leaves.append(tree)
        return _LEAF
    children, aux_data = node_def.to_iterable(tree)
    defs = tuple([_flatten_into(c, leaves, is_leaf) for c in children])
    if kind is tuple and all(d is _LEAF for d in defs):
        return _tuple_of_leaves(len(defs))  # the usual arguments: made once
    return PyTreeDef(kind, aux_data, defs)


@functools.lru_cache(maxsize=None)
def _tuple_of_leaves(n: int) -> PyTreeDef:
    return PyTreeDef(tuple, None, (_LEAF,) * n)


def tree_unflatten(treedef: PyTreeDef, leaves: Iterable):
    """The pytree of structure ``treedef`` holding ``leaves``."""
    if type(leaves) is list or type(leaves) is tuple:  # the usual cases, made quick
        if treedef is _LEAF and len(leaves) == 1:
            return leaves[0]
        if treedef._key[0] is tuple and treedef._key[2] == (_LEAF._key,) * len(leaves):
            return tuple(leaves)
    leaves = list(leaves)
    rest = iter(leaves)
    try:
        tree = _build(treedef, rest)
        if next(rest, _END) is _END:
            return tree
        raise ValueError(f"Too many leaves for PyTreeDef; expected {treedef.num_leaves}.")
    except StopIteration:
        raise ValueError(f"Too few leaves for PyTreeDef; expected {treedef.num_leaves}, "
                         f"got {len(leaves)}") from None


_END = object()


def _build(treedef: PyTreeDef, leaves):
    if treedef.node_type is None:
        return next(leaves)
    children = [_build(child, leaves) for child in treedef.children]
    return _node_type(treedef.node_type).from_iterable(treedef.aux_data, children)


def tree_leaves(tree, is_leaf: Callable[[Any], bool] | None = None) -> list:
    """The leaves of ``tree``, left to right."""
    return tree_flatten(tree, is_leaf)[0]


def tree_structure(tree, is_leaf: Callable[[Any], bool] | None = None) -> PyTreeDef:
    """The structure of ``tree``, without its leaves."""
    return tree_flatten(tree, is_leaf)[1]


_NO_INITIALIZER = object()


def tree_reduce(function: Callable, tree, initializer: Any = _NO_INITIALIZER,
                is_leaf: Callable[[Any], bool] | None = None):
    """``functools.reduce`` over the leaves of ``tree``."""
    start = () if initializer is _NO_INITIALIZER else (initializer,)
    return functools.reduce(function, tree_leaves(tree, is_leaf), *start)


def tree_all(tree, *, is_leaf: Callable[[Any], bool] | None = None) -> bool:
    """Whether every leaf of ``tree`` is true."""
    return all(tree_leaves(tree, is_leaf))


def tree_broadcast(prefix_tree, full_tree, is_leaf: Callable[[Any], bool] | None = None):
    """``prefix_tree`` with each of its leaves repeated over the subtree of
    ``full_tree`` it stands for: a tree of ``full_tree``'s structure."""
    treedef = tree_structure(full_tree, is_leaf)
    return tree_unflatten(treedef, broadcast_prefix(prefix_tree, full_tree))


def tree_transpose(outer_treedef: PyTreeDef, inner_treedef: PyTreeDef | None,
                   pytree_to_transpose):
    """Turn a tree of structure outer-of-inner into one of structure inner-of-outer
    (the inner structure, if not given, is that of the first inner tree)."""
    subtrees = outer_treedef.flatten_up_to(pytree_to_transpose)
    if inner_treedef is None:
        inner_treedef = tree_structure(subtrees[0])
    leaves, treedef = tree_flatten(pytree_to_transpose)
    if treedef.num_leaves != inner_treedef.num_leaves * outer_treedef.num_leaves:
        expected = tree_structure(tree_unflatten(outer_treedef, [tree_unflatten(
            inner_treedef, [0] * inner_treedef.num_leaves)] * outer_treedef.num_leaves))
        raise TypeError(f"Mismatch\n{treedef}\n != \n{expected}")
    rows = [leaves[i:i + inner_treedef.num_leaves]
            for i in range(0, len(leaves), inner_treedef.num_leaves or 1)]
    return tree_unflatten(inner_treedef, [tree_unflatten(outer_treedef, list(column))
                                          for column in zip(*rows)])


_NONE_IS_NOT_A_PREFIX = (
    "\n\nIn previous releases of JAX, flatten-up-to used to consider None to be a "
    "tree-prefix of non-None values. To obtain the previous behavior, you can usually "
    "write:\n  jax.tree.map(lambda x, y: None if x is None else f(x, y), a, b, "
    "is_leaf=lambda x: x is None)")


def _children_like(treedef: PyTreeDef, tree) -> Iterable:
    """The children of ``tree``, a node of the same type and arity as ``treedef``'s
    root; JAX's messages if it is not one."""
    kind, children = treedef.node_type, treedef.children
    name = {tuple: "tuple", list: "list", dict: "dict"}.get(kind)
    if type(tree) is not kind:
        if kind is type(None):
            raise ValueError(f"Expected None, got {tree!r}.{_NONE_IS_NOT_A_PREFIX}")
        if name is not None:
            raise ValueError(f"Expected {name}, got {tree!r}.")
        if kind in _registry:
            raise ValueError(f"Custom node type mismatch: expected type: {kind!r}, "
                             f"value: {tree!r}.")
        if not hasattr(type(tree), "_fields"):
            raise ValueError(f"Expected named tuple, got {tree!r}.")
        raise ValueError(f"Named tuple type mismatch: expected type: {kind!r}, tuple: {tree!r}.")
    got, aux_data = _node_type(kind).to_iterable(tree)
    if kind is dict and aux_data != treedef.aux_data:
        raise ValueError(f"Dict key mismatch; expected keys: {list(treedef.aux_data)}; "
                         f"present keys: {list(aux_data)}.")
    if name is not None and len(got) != len(children):
        raise ValueError(f"{name.capitalize()} arity mismatch: {len(got)} != {len(children)}; "
                         f"{name}: {tree!r}.")
    if kind in _registry and aux_data != treedef.aux_data:
        raise ValueError(f"Mismatch custom node data: {treedef.aux_data!r} != {aux_data!r}; "
                         f"value: {tree!r}.")
    return got


def leaf_paths(tree) -> list[str]:
    """Where each leaf of ``tree`` is, written as JAX's ``keystr`` writes key paths:
    ``[0]`` for an item of a tuple or list, ``['a']`` for a dict entry, ``.x`` for a
    namedtuple field.  Error messages use them to name a leaf."""
    return _paths(tree_structure(tree), "")


def _paths(treedef: PyTreeDef, prefix: str) -> list[str]:
    if treedef.node_type is None:
        return [prefix]
    return [path for key, child in zip(child_keys(treedef), treedef.children)
            for path in _paths(child, prefix + key)]


def child_keys(treedef: PyTreeDef) -> list[str]:
    """The keys of a node's children, as ``keystr`` writes them."""
    if treedef.node_type is dict:
        return [f"[{key!r}]" for key in treedef.aux_data]
    if treedef.node_type not in _registry:  # a namedtuple
        return [f".{field}" for field in treedef.node_type._fields]
    return [f"[{i}]" for i in range(len(treedef.children))]


def tree_map(f: Callable, tree, *rest, is_leaf: Callable[[Any], bool] | None = None):
    """Apply ``f`` leaf by leaf to ``tree`` and to ``rest``, trees of the same structure.

    ``is_leaf(x)`` true stops flattening at ``x``: it is passed to ``f`` whole.
    """
    leaves, treedef = tree_flatten(tree, is_leaf)
    others = [_leaves_matching(treedef, r, is_leaf) for r in rest]
    return tree_unflatten(treedef, [f(*xs) for xs in zip(leaves, *others)])


def _leaves_matching(treedef: PyTreeDef, tree, is_leaf) -> list:
    leaves, other = tree_flatten(tree, is_leaf)
    if other != treedef:
        raise ValueError(f"Custom node type mismatch; expected type: {treedef}, got {other}")
    return leaves


def broadcast_prefix(prefix, tree) -> list:
    """For each leaf of ``tree``, the leaf of ``prefix`` that covers it.

    ``prefix`` has the containers of ``tree`` down to some depth; a leaf of it
    (None included) stands for the whole subtree of ``tree`` at its place.
    """
    prefix_node = _node_type(type(prefix))
    if prefix is None or prefix_node is None:
        return [prefix] * len(tree_leaves(tree))
    same_type = type(tree) is type(prefix)
    prefix_children, prefix_aux = prefix_node.to_iterable(prefix)
    children, aux = prefix_node.to_iterable(tree) if same_type else ((), None)
    prefix_children, children = list(prefix_children), list(children)
    if not same_type or aux != prefix_aux or len(children) != len(prefix_children):
        raise ValueError(f"expected {tree_structure(tree)}, got {tree_structure(prefix)}")
    return [leaf for p, t in zip(prefix_children, children) for leaf in broadcast_prefix(p, t)]


class Partial(functools.partial):
    """``functools.partial`` as a pytree: its arguments are the leaves and its
    function is part of the structure, so it can pass in and out of transformed
    functions."""


register_pytree_node(Partial, lambda p: ((p.args, p.keywords), p.func),
                     lambda func, xs: Partial(func, *xs[0], **xs[1]))


# ---------------------------------------------------------------------------
# Flattening functions for the transformations.


class Store:
    """A box a flattened function fills with its output structure when it runs."""

    _EMPTY = object()

    def __init__(self):
        self.value = self._EMPTY

    def set(self, value):
        self.value = value

    def is_set(self) -> bool:
        return self.value is not self._EMPTY

    def get(self):
        if self.value is self._EMPTY:
            raise RuntimeError("the function has not been called yet")
        return self.value


def flatten_fun(f: Callable, in_tree: PyTreeDef) -> tuple[Callable, Store]:
    """``f`` on pytrees, as a function of flat leaves returning flat leaves."""
    out_tree = Store()

    def flat_fun(*leaves):
        outs = f(*tree_unflatten(in_tree, leaves))
        out_leaves, tree = tree_flatten(outs)
        out_tree.set(tree)
        return out_leaves

    return flat_fun, out_tree
