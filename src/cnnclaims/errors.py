"""Exceptions raised for bad input: each message names the thing and how to fix it."""


class CnnClaimsError(Exception):
    """Base class for the harness's own errors."""


class DataError(CnnClaimsError):
    """The CIFAR-10 source is missing, malformed or incomplete."""


class DataContractError(DataError):
    """The experiment's data loaded, but is not what the experiment declares (another
    image shape, labels outside its classes): every test that needs it would fail
    alike, so a pytest session stops at the first, in one line."""


class CacheError(CnnClaimsError):
    """A cache entry is unreadable or does not match what it claims to hold."""


class CacheWriteError(CnnClaimsError):
    """A folder the run must write (the cache, the artifacts) cannot be written: it
    cannot be created, it is read-only or not ours, or its disk is full.

    Not a CacheError (a damaged entry, discarded and rebuilt): nothing can be rebuilt
    here, so the run stops at the first one instead of failing, or retrying, per test.
    ``no_space``: the disk is full (or over quota). ``path``: what could not be written."""

    def __init__(self, message: str, path=None, no_space: bool = False):
        super().__init__(message)
        self.path, self.no_space = path, no_space

    def __reduce__(self):  # a training worker's error crosses a process boundary whole
        return type(self), (str(self), self.path, self.no_space)


class UnknownNameError(CnnClaimsError, KeyError):
    """An unknown layer, claim, scope or profile name."""

    def __str__(self):  # KeyError would repr() the message
        return str(self.args[0])


def unknown(kind: str, name, valid) -> UnknownNameError:
    valid = sorted(valid)
    plural = kind + ("es" if kind.endswith(("s", "x", "ch", "sh")) else "s")
    return UnknownNameError(f"unknown {kind} {name!r}; valid {plural}: {', '.join(map(str, valid))}")


class InputError(CnnClaimsError, ValueError):
    """An array given to a public function has the wrong shape, dtype or values
    (e.g. one image without its batch axis, pixels in 0-255 as floats, NaN).

    A ValueError too, so callers that caught numpy's ValueError still catch it."""


class ModelError(CnnClaimsError, ValueError):
    """A model that cannot be sliced or fed as it is (never built, subclassed,
    several inputs, or an input shape other than CIFAR-10's)."""


class FolderBlockedError(CacheWriteError, NotADirectoryError):
    """A file stands where a folder must be created (an OSError too: callers that fall
    back to another folder on OSError still do)."""


class TrainingBudgetError(CnnClaimsError):
    """The models a run lacks are predicted to take longer to train than its time
    budget (``--time-budget``): nothing was trained, and the claims that need them are
    not checked (pytest reports them as skipped, with this message)."""
