"""The Python 3.10 stand-in for enum.StrEnum behaves as the real one where the
declaration's vocabularies use it."""

import sys

import pytest

from cnnclaims.strenum import Py310StrEnum, StrEnum

pytestmark = pytest.mark.unit


def _members(base):
    class Kind(base):
        COMPARE = "compare"
        THRESHOLD = "threshold"

    return Kind


@pytest.mark.skipif(sys.version_info < (3, 11), reason="enum.StrEnum is new in Python 3.11")
def test_the_stand_in_behaves_as_enum_strenum():
    import enum

    for base in (Py310StrEnum, enum.StrEnum):
        kind = _members(base)
        assert kind("compare") is kind.COMPARE and kind.COMPARE == "compare"
        assert str(kind.THRESHOLD) == "threshold" and f"{kind.THRESHOLD}" == "threshold"
        assert f"{kind.THRESHOLD:>10}" == " threshold"
        assert hash(kind.COMPARE) == hash("compare") and {kind.COMPARE: 1}["compare"] == 1
        assert isinstance(kind.COMPARE, str) and [m.value for m in kind] == ["compare", "threshold"]
        with pytest.raises(ValueError):
            kind("other")


def test_strenum_is_the_standard_one_where_there_is_one():
    if sys.version_info >= (3, 11):
        import enum

        assert StrEnum is enum.StrEnum
    else:
        assert StrEnum is Py310StrEnum
