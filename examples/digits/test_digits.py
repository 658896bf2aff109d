"""The digits experiment's claims as tests: `pytest examples/digits` (smoke profile,
under a minute); pins in pinned_digits.json beside this file."""

from digits import DIGITS

from cnnclaims import parametrize_claims


@parametrize_claims(DIGITS)
def test_claim(claim_case, claim_checker):
    claim_checker(claim_case)


@parametrize_claims(DIGITS, null=True)
def test_null_control(null_case, claim_checker):
    claim_checker(null_case, null=True)
