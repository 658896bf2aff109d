"""``StrEnum`` on every Python the package supports (``requires-python >= 3.10``):
the standard library's from 3.11, and on 3.10 ``Py310StrEnum``, a str-valued Enum
that behaves the same where cnnclaims relies on it (members are str, equal to, hashed,
printed and formatted as their value), so a declaration may write the plain string."""

from __future__ import annotations

import sys
from enum import Enum

__all__ = ["Py310StrEnum", "StrEnum"]


class Py310StrEnum(str, Enum):
    """``enum.StrEnum`` of Python 3.11, as far as cnnclaims uses it (tests/test_strenum.py
    compares the two on the vocabularies' operations)."""

    __str__ = str.__str__
    __format__ = str.__format__  # type: ignore[assignment]  # str's, as 3.11's StrEnum


if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # Python 3.10
    StrEnum = Py310StrEnum
