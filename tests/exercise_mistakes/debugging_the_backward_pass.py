"""Wrong answers to the exercise of "Debugging the backward pass"."""

from minijax import custom_vjp


def make_recorder_without_rule():
    """No custom_vjp: the list fills when the function runs forward, with values."""
    seen = []

    def record(x):
        seen.append(x)
        return x

    return record, seen


def make_recorder_of_values():
    """Records the value saved on the forward pass instead of the cotangent."""
    seen = []

    @custom_vjp
    def record(x):
        return x

    def record_fwd(x):
        return x, x

    def record_bwd(x, g):
        seen.append(x)
        return (g,)

    record.defvjp(record_fwd, record_bwd)
    return record, seen


SEEN = []


def make_recorder_sharing_a_list():
    """Every recorder appends to the same module-level list."""

    @custom_vjp
    def record(x):
        return x

    def record_bwd(_, g):
        SEEN.append(g)
        return (g,)

    record.defvjp(lambda x: (x, None), record_bwd)
    return record, SEEN


MISTAKES = {
    "check_make_recorder": [make_recorder_without_rule, make_recorder_of_values,
                            make_recorder_sharing_a_list],
}
