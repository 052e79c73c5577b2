#!/usr/bin/env python3
"""Checks encoded wire values against docs/openapi.yaml (WireContractTests runs it).

    check-wire-contract.py OPENAPI.yaml CASES.json

CASES.json is {"responses": [{"method", "path", "status", "body"}], "errors": {schema
name: body}, "exempt": [{"method", "path", "reason"}]}. Each response body is validated
against the schema the document gives that (path, method, status), made strict first:
`$ref`s inlined, `allOf` of objects merged, and every object schema that lists
`properties` but says nothing of `additionalProperties` closed, so a field the type
writes and the document does not name fails as surely as a documented required field
the type leaves out. Every documented JSON error response is checked with the sample
of its schema (`Error`, `InputError`, …) from "errors". Every documented JSON response
must be covered by a case, an error sample or an exemption.

Prints one line per problem; exits 1 when there is any, 0 otherwise.
"""
import copy
import json
import sys

import jsonschema
import yaml


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        document = yaml.safe_load(f)
    with open(sys.argv[2], encoding="utf-8") as f:
        cases = json.load(f)
    schemas = document.get("components", {}).get("schemas", {})
    responses = document.get("components", {}).get("responses", {})

    def resolve(ref):
        node = document
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        return node

    def strict(schema, depth=0):
        if depth > 40 or not isinstance(schema, dict):
            return schema
        if "$ref" in schema:
            merged = copy.deepcopy(resolve(schema["$ref"]))
            merged.update({k: v for k, v in schema.items() if k != "$ref"})
            return strict(merged, depth + 1)
        schema = dict(schema)
        if "allOf" in schema:
            parts = [strict(part, depth + 1) for part in schema.pop("allOf")]
            if all(p.get("type") in (None, "object") and "oneOf" not in p and "anyOf" not in p for p in parts):
                properties, required, closed = {}, [], None
                for part in parts:
                    properties.update(part.get("properties", {}))
                    required += [r for r in part.get("required", []) if r not in required]
                    if part.get("additionalProperties") not in (None, False):
                        closed = part["additionalProperties"]
                schema.setdefault("type", "object")
                schema["properties"] = {**properties, **schema.get("properties", {})}
                schema["required"] = required + [r for r in schema.get("required", []) if r not in required]
                if closed is not None:
                    schema["additionalProperties"] = closed
            else:
                schema["allOf"] = parts
        for key in ("oneOf", "anyOf"):
            if key in schema:
                schema[key] = [strict(part, depth + 1) for part in schema[key]]
        if "items" in schema:
            schema["items"] = strict(schema["items"], depth + 1)
        if isinstance(schema.get("additionalProperties"), dict):
            schema["additionalProperties"] = strict(schema["additionalProperties"], depth + 1)
        if "properties" in schema:
            schema["properties"] = {name: strict(sub, depth + 1) for name, sub in schema["properties"].items()}
            schema.setdefault("additionalProperties", False)
        return schema

    def json_schema(method, path, status):
        operation = document["paths"].get(path, {}).get(method.lower())
        if operation is None:
            return None, None
        response = operation.get("responses", {}).get(str(status))
        if response is None:
            return None, None
        name = None
        if "$ref" in response:
            response = resolve(response["$ref"])
        content = response.get("content", {}).get("application/json")
        if content is None:
            return None, None
        schema = content.get("schema", {})
        if "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
        return strict(schema), name

    problems = []
    covered = set()
    for case in cases["responses"]:
        key = (case["method"].upper(), case["path"], str(case["status"]))
        schema, _ = json_schema(*key)
        if schema is None:
            problems.append(f"{key[0]} {key[1]} {key[2]}: the document has no JSON response for it")
            continue
        covered.add(key)
        for error in jsonschema.Draft202012Validator(schema).iter_errors(case["body"]):
            where = "/".join(str(p) for p in error.absolute_path) or "(body)"
            problems.append(f"{key[0]} {key[1]} {key[2]} at {where}: {error.message}")

    exempt = {(e["method"].upper(), e["path"]) for e in cases.get("exempt", [])}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in ("get", "put", "post", "delete", "patch"):
                continue
            for status in operation.get("responses", {}):
                key = (method.upper(), path, str(status))
                schema, name = json_schema(*key)
                if schema is None or key in covered or (key[0], path) in exempt:
                    continue
                if status.startswith(("4", "5")) and name in cases["errors"]:
                    for error in jsonschema.Draft202012Validator(schema).iter_errors(cases["errors"][name]):
                        where = "/".join(str(p) for p in error.absolute_path) or "(body)"
                        problems.append(f"{key[0]} {path} {status} ({name}) at {where}: {error.message}")
                    continue
                problems.append(f"{key[0]} {path} {status}: documented, but no wire value is checked against it")

    for problem in problems:
        print(problem)
    print(f"{len(cases['responses'])} responses and {len(cases['errors'])} error shapes checked; {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
