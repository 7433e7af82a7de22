"""Checks the OpenAPI document on stdin with openapi-spec-validator (a validator we did not
write) and prints, as JSON: `valid`, the `errors` it found (each with where), the document's
`openapi` version, and its `operations`: every path with its methods.

Used by tests/tests/openapi.rs through tests/src/openapi.rs."""

import json
import sys

from openapi_spec_validator import OpenAPIV31SpecValidator, OpenAPIV30SpecValidator

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def main() -> None:
    text = sys.stdin.read()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        print(json.dumps({"valid": False, "errors": [f"not JSON: {e}"]}))
        return
    version = str(doc.get("openapi", "")) if isinstance(doc, dict) else ""
    validator = (OpenAPIV31SpecValidator if version.startswith("3.1") else OpenAPIV30SpecValidator)(doc)
    errors = [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(document)'}: {e.message}"
        for e in validator.iter_errors()
    ]
    paths = doc.get("paths", {}) if isinstance(doc, dict) else {}
    operations = {
        path: sorted(m for m in item if m in METHODS) for path, item in paths.items()
    }
    print(json.dumps({"valid": not errors, "errors": errors[:50], "openapi": version, "operations": operations}))


if __name__ == "__main__":
    main()
