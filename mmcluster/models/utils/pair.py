"""``(h, w)`` arguments of the clustering layers (centres, windows, regions per side)."""
from typing import Sequence, Tuple, Union

IntPair = Union[int, Sequence[int]]


def to_pair(value: IntPair, name: str) -> Tuple[int, int]:
    """``(value, value)`` for an int, else the pair as ints.

    Raises:
        ValueError: naming ``name``, unless the result is two integers ``>= 1``.
    """
    out = (value, value) if isinstance(value, int) else tuple(int(i) for i in value)
    if len(out) != 2 or min(out) < 1:
        raise ValueError(f'{name} must be a positive int or a pair (h, w) of positive ints, got {value!r}')
    return out
