"""The code that decides a trained model's weights beyond its spec, data and versions,
and its digest: ``TRAINING_CODE`` (``spec``) records ``training_code_digest()`` as of
the last review of ``TRAINING_VERSION``, and tests/test_training.py fails when that
code changes without such a review."""

from __future__ import annotations

import ast
import inspect
import sys
import textwrap

from .. import cache, compat, inputs, model, modelio, monitoring
from .entries import train_entry
from .fitting import WeightDigests, fit, prepare
from .spec import NestedSubset, TrainSpec, checked_subset, nested_subset, spec_dict, stratified_subset


def code_digest(sources) -> str:
    """SHA-256 (first 16 hex digits) of Python sources as code: their ASTs without
    docstrings, so comments, docstrings, formatting and line numbers do not count, and
    any change to a statement, name or constant does."""
    dumps = []
    for source in sources:
        tree = ast.parse(textwrap.dedent(source))
        for node in ast.walk(tree):
            body = getattr(node, "body", None)
            if (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module))
                and body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
        dumps.append(ast.unparse(tree))  # canonical source: steadier across Python versions than ast.dump
    return cache.stable_hash(dumps)[:16]


def training_functions() -> list:
    """What decides a trained model's weights beyond its spec, data and versions: the
    fit, its inputs, the subsets, the early-stopping split, the architecture and
    compilation, the seeding."""
    return [
        TrainSpec,
        spec_dict,
        fit,
        WeightDigests,
        prepare,
        train_entry,
        checked_subset,
        stratified_subset,
        nested_subset,
        NestedSubset,
        monitoring.split,
        model.build_model,
        model.compile_model,
        compat.set_determinism,
        compat.steps_per_execution,
        inputs.model_input,
        inputs.class_labels,
        inputs._from_one_hot,
        modelio.fed,
        modelio.trainable,
        modelio.output_index,
    ]


def training_code_digest() -> str:
    """``code_digest`` of ``training_functions()``' sources."""
    return code_digest(source_of(f) for f in training_functions())


def source_of(obj) -> str:
    """``inspect.getsource(obj)``. A class whose ``__module__`` names another module
    than the one defining it (``spec.set_module``: NestedSubset) is read from the
    latter, ``_module_source``: inspect looks for a class in its ``__module__``'s file."""
    home = getattr(obj, "_module_source", None) if isinstance(obj, type) else None
    if home is None or home == obj.__module__:
        return inspect.getsource(obj)
    source = inspect.getsource(sys.modules[home])
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and node.name == obj.__qualname__:
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])  # as inspect: decorators too
            return "".join(source.splitlines(keepends=True)[first - 1 : node.end_lineno])
    raise OSError(f"class {obj.__qualname__} not found in {home}")
