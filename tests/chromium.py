"""Debian's chromium for the browser tests: where it is, and how to start it on a closed network."""

from __future__ import annotations

import os
import shutil


def chromium_path() -> str | None:
    """``$ULAK_CHROMIUM``, else ``chromium`` on PATH (Debian's package), else None."""
    return os.environ.get("ULAK_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def launch_args() -> list[str]:
    # As root chromium needs --no-sandbox. The rest keep it from calling home: on a machine with no
    # way out, its background connections fail by the dozen and slow every start.
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
    ]
