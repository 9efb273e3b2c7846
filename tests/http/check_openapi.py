#!/usr/bin/env python3
"""Validates recorded HTTP responses against daemon/openapi.json.

Usage: check_openapi.py OPENAPI RESPONSES
RESPONSES is a JSON list of {"method", "path" (the OpenAPI template), "status",
"content_type", "body" (parsed JSON or null)}. Each must be documented (path,
method, status, content type) and, when JSON, valid against its schema.
Exit 0 when all are; 1 listing what is not; 77 when python3-jsonschema is absent.
"""
import json
import sys
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)  # RefResolver: Debian 12 has no 'referencing'

try:
    import jsonschema
except ImportError:
    print("python3-jsonschema is not installed")
    sys.exit(77)


def main():
    spec = json.load(open(sys.argv[1]))
    responses = json.load(open(sys.argv[2]))
    resolver = jsonschema.RefResolver.from_schema(spec)
    failures = []
    for r in responses:
        where = f"{r['method']} {r['path']} -> {r['status']}"
        operation = spec["paths"].get(r["path"], {}).get(r["method"].lower())
        if operation is None:
            failures.append(f"{where}: not in the document")
            continue
        documented = operation["responses"].get(str(r["status"]))
        if documented is None:
            failures.append(f"{where}: status not documented")
            continue
        if "$ref" in documented:
            documented = resolver.resolve(documented["$ref"])[1]
        content = documented.get("content", {})
        media = r["content_type"].split(";")[0].strip()
        if not content and not media:
            continue  # documented without a body (304), answered without one
        if media not in content:
            failures.append(f"{where}: content type {media} not documented ({', '.join(content)})")
            continue
        schema = content[media].get("schema")
        if schema is None or r["body"] is None:
            continue
        try:
            jsonschema.validate(r["body"], schema, resolver=resolver)
        except jsonschema.ValidationError as e:
            failures.append(f"{where}: {e.message} (at {list(e.absolute_path)})")
    for f in failures:
        print(f)
    print(f"{len(responses)} responses checked, {len(failures)} invalid")
    sys.exit(1 if failures else 0)


main()
