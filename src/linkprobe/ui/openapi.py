"""The API's OpenAPI document, from which the web UI's TypeScript types are generated (`make ui`).

`python -m linkprobe.ui.openapi` writes it to stdout: the app is built, not served, and no store
is opened. The document does not depend on the settings (caps are served by GET /api/v1/service).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from linkprobe.api import create_app
from linkprobe.settings import Settings
from linkprobe.store import open_store


def document() -> dict[str, Any]:
    settings = Settings(redis_url=None)  # the constructors of the SQLite store and keys touch no file
    return create_app(settings, open_store(settings), embedded_worker=False).openapi()


def main() -> None:
    json.dump(document(), sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
