"""The catalog is well-formed: ids, scopes, SESOI with reasons, primary claims."""

import re

import numpy as np
import pytest

from cnnclaims.article import ARTICLE
from cnnclaims.declaration import PRIMARY

CATALOG = ARTICLE.claims
CLAIMS = {c.id: c for c in CATALOG}
SCOPES = ARTICLE.scopes_for(ARTICLE.profile("article"))
claims_for = ARTICLE.claims_for
get_claim = ARTICLE.claim
from cnnclaims.errors import UnknownNameError
from cnnclaims.evidence import table_metrics

STATS = tuple(table_metrics(ARTICLE))


def test_ids_unique_and_readable():
    assert len(CLAIMS) == len(CATALOG)
    for c in CATALOG:
        assert re.fullmatch(r"C\d+b?-[a-z0-9-]+", c.name), c.name
        assert set(c.scopes) <= {ARTICLE.scope_kind(s) for s in SCOPES}
        assert c.stat in STATS
        assert c.kind in ("compare", "threshold") and c.alternative in ("greater", "less")
        assert c.text and c.figure and c.metric.layers and 0 < c.alpha < 1


def test_every_claim_states_a_sesoi_with_a_reason():
    for c in CATALOG:
        assert np.isfinite(c.sesoi) and c.sesoi > 0, c.id
        assert len(c.sesoi_reason) > 10, c.id
    assert get_claim("C10").sesoi == 0.01  # one accuracy point, as the issue says


def test_primary_claims_are_the_articles_headline():
    # last-layer sparsity, zero concentration, softmax peaking on the frog, bigger data better
    assert {c.id for c in CATALOG if c.primary} == {"C3", "C5", "C8", "C10"}
    assert all(c.tier == PRIMARY for c in CATALOG if c.primary)


def test_at_least_the_issue_claims():
    assert {f"C{i}" for i in range(1, 11)} <= set(CLAIMS)


def test_unknown_claim():
    with pytest.raises(UnknownNameError, match="unknown claim 'C99'.*C1"):
        get_claim("C99")


def test_claims_for_scope():
    assert {c.id for c in claims_for("seeds")} == set(CLAIMS) - {"C6", "C6b"}
    assert all(c.directional for c in claims_for("frogs", directional_only=True))


def test_people_read_labels_not_internal_keys():
    stat_label = ARTICLE.stat_label
    assert all(stat_label(k) != k for k in STATS)  # every statistic has a label for people
    assert stat_label("c6_zero_fraction") == "conv2d_6 zero fraction"
    for c in CATALOG:
        assert "_" not in c.describe().replace("conv2d_", ""), c.describe()
