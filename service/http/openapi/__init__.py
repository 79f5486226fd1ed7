"""The OpenAPI 3.1 document, generated from the route table and the pydantic models: endpoints declare
their operation with `@operation(...)` (declarations), `document(routes)` builds the document (document)."""

from service.http.openapi.declarations import Body, Form, Operation, Webhook, operation, spec_of
from service.http.openapi.document import document, operation_id

__all__ = ["Body", "Form", "Operation", "Webhook", "document", "operation", "operation_id", "spec_of"]
