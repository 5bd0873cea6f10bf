"""Argument checks with messages that name the option, the value and what
is allowed. Every user-facing option of vivit_mm is checked with these, once,
where it is given (``__init__`` of a module, hook, transform or wrapper).

Each function returns the value (converted where that is safe) or raises
``ValueError``; ``where`` prefixes the message (e.g. the hook's name).
"""
import numbers
from typing import Any, Sequence, Tuple


def _say(where: str, text: str) -> str:
    return f'{where}: {text}' if where else text


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_int(value: Any, name: str, where: str = '') -> int:
    """``value`` as an int >= 1."""
    if not _is_int(value) or value < 1:
        raise ValueError(_say(where, f'{name} must be a positive int, got '
                              f'{value!r}.'))
    return int(value)


def non_negative_int(value: Any, name: str, where: str = '',
                     hint: str = '') -> int:
    """``value`` as an int >= 0."""
    if not _is_int(value) or value < 0:
        raise ValueError(_say(where, f'{name} must be an int >= 0{hint}, got '
                              f'{value!r}.'))
    return int(value)


def int_in_range(value: Any, name: str, low: int, high: int,
                 where: str = '', hint: str = '') -> int:
    """``value`` as an int in ``[low, high]``."""
    if not _is_int(value) or not low <= value <= high:
        raise ValueError(_say(where, f'{name} must be an int in [{low}, '
                              f'{high}]{hint}, got {value!r}.'))
    return int(value)


def flag(value: Any, name: str, where: str = '') -> bool:
    """``value``, which must be True or False."""
    if not isinstance(value, bool):
        raise ValueError(_say(where, f'{name} must be True or False, got '
                              f'{value!r}.'))
    return value


def in_range(value: Any, name: str, low: float, high: float,
             high_open: bool = False, where: str = '') -> float:
    """``value`` as a float in ``[low, high]`` (``[low, high)`` with
    ``high_open``)."""
    ok = _is_number(value) and low <= value and (
        value < high if high_open else value <= high)
    if not ok:
        bracket = ')' if high_open else ']'
        raise ValueError(_say(where, f'{name} must be a number in [{low:g}, '
                              f'{high:g}{bracket}, got {value!r}.'))
    return float(value)


def rate(value: Any, name: str, where: str = '') -> float:
    """A dropout-like rate in ``[0, 1)``."""
    return in_range(value, name, 0.0, 1.0, high_open=True, where=where)


def probability(value: Any, name: str, where: str = '') -> float:
    """A probability in ``[0, 1]``."""
    return in_range(value, name, 0.0, 1.0, where=where)


def one_of(value: Any, name: str, choices: Sequence, where: str = '') -> Any:
    """``value``, which must be one of ``choices``."""
    if value not in tuple(choices):
        raise ValueError(_say(where, f'{name} must be one of {tuple(choices)}'
                              f', got {value!r}.'))
    return value


def int_pair(value: Any, name: str, where: str = '') -> Tuple[int, int]:
    """An int (used for both) or a pair of ints, as ``(a, b)``."""
    if _is_int(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 \
            and all(_is_int(v) for v in value):
        return int(value[0]), int(value[1])
    raise ValueError(_say(where, f'{name} must be an int or a pair of ints, '
                          f'got {value!r}.'))


def number_pair(value: Any, name: str, low: float = float('-inf'),
                where: str = '') -> Tuple[float, float]:
    """A ``(low, high)`` pair of numbers with ``low_bound <= low <= high``."""
    ok = isinstance(value, (tuple, list)) and len(value) == 2 \
        and all(_is_number(v) for v in value) \
        and low <= value[0] <= value[1]
    if not ok:
        raise ValueError(_say(where, f'{name} must be (low, high) with '
                              f'{low:g} <= low <= high, got {value!r}.'))
    return float(value[0]), float(value[1])
