"""Exceptions raised for bad input: each message names the thing and how to fix it."""


class CnnClaimsError(Exception):
    """Base class for the harness's own errors."""


class DataError(CnnClaimsError):
    """The CIFAR-10 source is missing, malformed or incomplete."""


class CacheError(CnnClaimsError):
    """A cache entry is unreadable or does not match what it claims to hold."""


class UnknownNameError(CnnClaimsError, KeyError):
    """An unknown layer, claim, scope or profile name."""

    def __str__(self):  # KeyError would repr() the message
        return str(self.args[0])


def unknown(kind: str, name, valid) -> UnknownNameError:
    valid = sorted(valid)
    return UnknownNameError(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(map(str, valid))}")
