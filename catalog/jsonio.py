"""JSON from files and servers is input: a document nested too deeply is a ValueError like any bad JSON.

The standard library raises RecursionError for deep nesting (a hostile `[[[[...]]]]` of 100,000 levels), which
callers that handle malformed JSON (ValueError) would let through as a traceback.
"""

from __future__ import annotations

import json
from typing import Any


def loads(text: str | bytes) -> Any:
    """json.loads, with RecursionError turned into ValueError."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
