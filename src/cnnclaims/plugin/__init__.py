"""The pytest plugin's plumbing beside its hooks and fixtures
(``cnnclaims.pytest_plugin``): ``session`` (the session's state, folders and one-time
checks) and ``cases`` (claim cases: parametrisation, the check against a pin, the
collected verdicts)."""
