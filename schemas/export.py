"""Write the JSON Schema of every shared type to ``schemas/json/`` (``python -m schemas.export``).

``tests/test_schemas.py`` fails when the committed files differ from what this produces.
"""

from __future__ import annotations

import json
import pathlib
import sys

import msgspec

from schemas.decision import Decision
from schemas.events import Event
from schemas.picture import Person

OUT = pathlib.Path(__file__).parent / "json"

TARGETS = {"event": Event, "person": Person, "decision": Decision}


def render() -> dict[str, str]:
    return {
        f"{name}.schema.json": json.dumps(msgspec.json.schema(tp), indent=2, ensure_ascii=False, sort_keys=True)
        + "\n"
        for name, tp in TARGETS.items()
    }


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for fname, text in render().items():
        (OUT / fname).write_text(text, encoding="utf-8")
        print(f"wrote schemas/json/{fname}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
