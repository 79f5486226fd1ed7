"""Schemathesis hooks for the contract test (loaded by its config file, in the `st` process). They give
requests schemathesis means to be valid what no schema can describe; the others keep what was generated
and must be refused:

- an upload's kind is told by its content: random bytes named tasks.csv are rightly refused (415, as the
  document says), so a valid upload (or preview) gets a real CSV file; and its `mapping` and `preset`, which
  must fit that file's header row (else 422, as documented), get values that do;
- an Idempotency-Key already used for another request is rightly refused (422, as the document says), so
  a valid request gets a key of its own (what the key is for: one key per distinct request).

And one generated "invalid" request is left out because it cannot be sent: an empty list for a field of a
multipart form is no part at all, so the request that goes out is valid (the field is simply absent).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import schemathesis

from service.imports.files.presets import NO_PRESET

# As text: schemathesis re-checks an edited body against the schema, and takes bytes for invalid there.
SAMPLE = (Path(__file__).parents[1] / "examples" / "tasks.csv").read_text()
FITTING_MAPPING = '{"owner": null, "priority": "priority"}'  # columns of SAMPLE


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    # New containers, never edits in place: generated cases can share them.
    if case.headers and "Idempotency-Key" in case.headers:
        case.headers = {**case.headers, "Idempotency-Key": uuid.uuid4().hex}
    if case.method.upper() == "POST" and isinstance(case.body, dict) and "file" in case.body:
        fitting = {"file": SAMPLE, "mapping": FITTING_MAPPING, "preset": NO_PRESET}
        case.body = {**case.body, **{name: value for name, value in fitting.items() if name in case.body}}


@schemathesis.hook
def filter_case(context: Any, case: Any) -> bool:
    multipart = (case.media_type or "").startswith("multipart/form-data")
    return not (multipart and isinstance(case.body, dict) and any(value == [] for value in case.body.values()))
