"""The article's claims, one test per (claim, scope), checked against pinned verdicts.

Ids read like ``test_claim[C3-last-layer-sparsity-frogs]``; ``-k C3`` selects a claim.
A claim pinned as not replicating is a strict expected failure: CI goes red when
any verdict changes. See docs/concepts.md ("Pinned verdicts"). The same tests ship inside the
package (``pytest -p cnnclaims --pyargs cnnclaims.article``); this file is how any
user's own test file looks (see README "Your own claim").
"""

from cnnclaims import parametrize_claims
from cnnclaims.article import ARTICLE


@parametrize_claims(ARTICLE)
def test_claim(claim_case, claim_checker):
    __tracebackhide__ = True  # the failure message carries the numbers and plots
    claim_checker(claim_case)


@parametrize_claims(ARTICLE, null=True)
def test_null_control(null_case, claim_checker):
    """Seeds-only differences must not support a directional claim."""
    __tracebackhide__ = True
    claim_checker(null_case, null=True)
