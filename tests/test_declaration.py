"""Bad declarations: each is one error, at declaration, naming the thing and the fix.

The table holds the keyword arguments that break a ``Claim`` (or an ``Experiment``)
and the message expected, with the reason a user would write it."""
import dataclasses
import math

import pytest

from cnnclaims.article import ARTICLE
from cnnclaims.declaration import Claim, Metric

pytestmark = pytest.mark.unit

METRIC = Metric("m", ("conv2d_5",), lambda acts, y: acts["conv2d_5"].mean(axis=(1, 2, 3)))
GOOD = dict(id="X1", slug="a-claim", text="a is greater than b", metric=METRIC, sesoi=0.02)

BAD_CLAIMS = [
    # (changes, error, message, why a user writes it)
    ({"sesoi": -0.02}, ValueError, "sesoi must be a positive number", "a sign slip"),
    ({"sesoi": math.nan}, ValueError, "sesoi must be a positive number", "no SESOI thought of"),
    ({"kind": "comapre"}, ValueError, "kind must be 'compare' or 'threshold'", "a typo"),
    ({"scopes": ("frogs",)}, ValueError, "declared as 'images' whatever name the experiment gives it",
     "the test ids' name of the images scope"),
    ({"scopes": "seeds"}, TypeError, r"got the string 'seeds'; write \('seeds',\)", "a one-element tuple without comma"),
    ({"id": "X 1"}, ValueError, "without spaces", "ids name tests"),
]


@pytest.mark.parametrize("changes,error,message,why", BAD_CLAIMS, ids=[w for *_, w in BAD_CLAIMS])
def test_a_bad_claim_is_one_clear_error(changes, error, message, why):
    with pytest.raises(error, match=message):
        Claim(**{**GOOD, **changes})


def test_the_good_claim_of_the_table_is_accepted():
    # the table's claims fail for their change alone
    assert Claim(**GOOD).scopes == ("probe", "images", "seeds", "sizes")


def test_repeated_claim_ids_name_both_claims_and_the_fix():
    twin = dataclasses.replace(ARTICLE.claims[1], id=ARTICLE.claims[0].id)
    with pytest.raises(ValueError, match=r"claim ids repeat: \['C1'\] \(C1: first-layer-processing, "
                                         r"first-layer-redundancy\); give each claim its own id"):
        dataclasses.replace(ARTICLE, claims=(ARTICLE.claims[0], twin, *ARTICLE.claims[2:]))
