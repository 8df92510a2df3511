"""The API's error codes: every one the code sends is in ERROR_CODES with the status it is sent
with, and the README's Serving section and the OpenAPI document state exactly that list."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from mlgitops.serving.features import ERROR_CODES
from mlgitops.serving.openapi import openapi_document
from tests.support.readme import README

SERVING = Path(__file__).resolve().parents[3] / "src" / "mlgitops" / "serving"


def _name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def _literal(node: ast.AST | None) -> object:
    return node.value if isinstance(node, ast.Constant) else None


def _sent() -> tuple[set[str], set[tuple[str, int]]]:
    """The codes the serving modules construct, and (code, status) where both are literals."""
    codes: set[str] = set()
    pairs: set[tuple[str, int]] = set()
    for path in sorted(SERVING.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = _name(node.func)
            if name == "FieldError" and node.args:
                code = _literal(node.args[0])
                assert isinstance(code, str), f"{path.name}:{node.lineno}: a code not written out"
                codes.add(code)
            elif name == "RequestError" and len(node.args) == 2:
                status = _literal(node.args[0])
                for inner in ast.walk(node.args[1]):
                    if isinstance(inner, ast.Call) and _name(inner.func) == "FieldError":
                        pairs.add((str(_literal(inner.args[0])), int(status)))  # type: ignore[arg-type]
            elif name == "_refuse" and len(node.args) >= 3:  # the HTTP layer (limits.py)
                status, code = _literal(node.args[0]), _literal(node.args[1])
                assert isinstance(code, str), f"{path.name}:{node.lineno}: a code not written out"
                codes.add(code)
                pairs.add((code, int(status)))  # type: ignore[arg-type]
            elif name == "_json" and len(node.args) == 2 and isinstance(node.args[0], ast.Dict):
                body = dict(zip(map(_literal, node.args[0].keys), node.args[0].values, strict=True))
                if "error" in body:
                    code = _literal(body["error"])
                    codes.add(str(code))
                    pairs.add((str(code), int(_literal(node.args[1]))))  # type: ignore[arg-type]
    return codes, pairs


def test_every_code_sent_is_listed_with_its_status() -> None:
    codes, pairs = _sent()
    assert codes <= set(ERROR_CODES), f"add to ERROR_CODES: {sorted(codes - set(ERROR_CODES))}"
    assert {code for code, _ in pairs} >= {"records_not_wrapped", "not_ready", "invalid_json"}
    for code, status in sorted(pairs):
        assert ERROR_CODES[code] == status, f"{code} is sent with {status}"
    # Codes listed but never sent would be promises the API does not keep.
    assert set(ERROR_CODES) <= codes


def test_the_readme_lists_every_code_with_its_status() -> None:
    serving = README.split("\n## Serving\n", 1)[1].split("\n## ", 1)[0]
    table = dict(re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", serving, flags=re.M))
    assert {code: int(status) for code, status in table.items()} == ERROR_CODES


def test_the_openapi_document_enumerates_the_codes() -> None:
    document = openapi_document({"type": "object"}, "fraud-detector:x")
    error = document["paths"]["/predict"]["post"]["responses"]["422"]["content"]
    schema = error["application/json"]["schema"]
    assert schema["properties"]["error"]["enum"] == sorted(ERROR_CODES)
    assert schema["properties"]["detail"]["items"]["properties"]["code"]["enum"] == sorted(
        ERROR_CODES
    )
    statuses = {str(s) for s in ERROR_CODES.values()}
    declared = set(document["paths"]["/feedback"]["post"]["responses"])
    assert statuses <= declared, f"/feedback does not declare {statuses - declared}"
    # /predict never answers 403 or 409 (labels only), and 401 only with a predict token set.
    reads = statuses - {"401", "403", "409"}
    assert reads <= set(document["paths"]["/predict"]["post"]["responses"])
    closed = openapi_document({"type": "object"}, "fraud-detector:x", read_token=True)
    for route, method in (("/predict", "post"), ("/metadata", "get"), ("/schema", "get")):
        operation = closed["paths"][route][method]
        assert "401" in operation["responses"], route
        assert operation["security"] == [{"predictToken": []}], route
        assert "security" not in document["paths"][route][method], route
    assert closed["paths"]["/feedback"]["post"]["security"] == [{"feedbackToken": []}]
