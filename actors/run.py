"""Run an operation in this process, without Redis, for debugging an analysis:

    python -m actors.run OPERATION [--params JSON] [--input FILE] [--quali-sup NAME ...]

Prints the result as JSON on stdout (the same result the job would store) and progress
on stderr. ``--input`` takes, for ``clustering``, an edge CSV ``source,target,confidence``;
for ``phenotype_clustering``, an entity x phenotype CSV (first column the entity id, one
yes/no column per HPO term; ``--quali-sup NAME`` marks a supplementary qualitative column,
such as inheritance); for ``llm_generation``, the JSON result of a clustering job.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from actors import catalog, progress
from actors.errors import JobError, classify
from actors.params import InvalidParams, validate


def _edges(args) -> dict:
    from actors.analysis.network_clustering import read_edge_csv

    return {"edges": read_edge_csv(args.input)}


def _matrix(args) -> dict:
    from actors.analysis.phenotype_clustering import read_matrix_csv

    quali_sup = tuple(args.quali_sup)
    return {"matrix": read_matrix_csv(args.input, quali_sup=quali_sup), "quali_sup": quali_sup}


def _source_result(args) -> dict:
    with open(args.input, encoding="utf-8") as f:
        return {"source_result": json.load(f)}


INPUT_READERS = {"clustering": _edges, "phenotype_clustering": _matrix, "llm_generation": _source_result}


def _fail(code: str, message: str, details=None) -> int:
    print(json.dumps({"error": code, "message": message, **({"details": details} if details else {})}), file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m actors.run", description=__doc__.splitlines()[0])
    parser.add_argument("operation", choices=sorted(catalog.CATALOG))
    parser.add_argument("--params", default="{}", help="the job's parameters as a JSON object")
    parser.add_argument("--input", help="an input file (see above) instead of the shipped data")
    parser.add_argument("--quali-sup", action="append", default=[], metavar="NAME",
                        help="a supplementary qualitative column of the phenotype CSV (repeatable)")
    args = parser.parse_args(argv)

    operation = catalog.get(args.operation)
    try:
        params = validate(operation, json.loads(args.params))
    except json.JSONDecodeError as e:
        return _fail("INVALID_PARAMS", f"--params is not valid JSON: {e}")
    except InvalidParams as e:
        return _fail("INVALID_PARAMS", e.message, e.details)

    inputs = {}
    if args.input:
        if args.operation not in INPUT_READERS:
            return _fail("INVALID_INPUT", f"{args.operation} takes no --input")
        try:
            inputs = INPUT_READERS[args.operation](args)
        except (OSError, ValueError) as e:
            return _fail("INVALID_INPUT", f"{args.input}: {e}")

    progress.report_locally(
        lambda step, current, total, message: print(f"[{step} {current}/{total}] {message}", file=sys.stderr)
    )
    module = importlib.import_module(f"actors.operations.{operation.name}")
    try:
        result = module.run(params, **inputs)
    except JobError as e:
        return _fail(e.code, e.message)
    except Exception as e:
        failure = classify(e)
        return _fail(failure.code, failure.message)
    json.dump(result, sys.stdout, indent=2, default=str)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
