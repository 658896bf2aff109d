"""The widths experiment's claims as tests: `pytest examples/widths` (smoke profile,
a few minutes); pins in pinned_widths.json beside this file."""

from widths import WIDTHS

from cnnclaims import parametrize_claims


@parametrize_claims(WIDTHS)
def test_claim(claim_case, claim_checker):
    claim_checker(claim_case)


@parametrize_claims(WIDTHS, null=True)
def test_null_control(null_case, claim_checker):
    claim_checker(null_case, null=True)
