"""Checks of the artifact store URLs that commands take (``--artifacts-url``)."""

from __future__ import annotations

import argparse
from urllib.parse import urlsplit

__all__ = ["artifacts_url"]


def artifacts_url(text: str) -> str:
    """argparse type of ``--artifacts-url``: refuses URLs that would lose what is stored.

    ``memory://`` lives inside one process (the Python API's tests use it); a command would
    register into it and exit. ``file://host/path`` names a host that fsspec ignores: it would
    write under a folder named after the host, relative to the current directory.
    """
    parts = urlsplit(text)
    scheme, netloc = parts.scheme.lower(), parts.netloc
    if scheme == "memory":
        raise argparse.ArgumentTypeError(
            f"{text!r} is an in-memory store: what a command stores there is gone when it "
            "exits; give a store that outlives it (s3://..., gs://..., file:///path)"
        )
    if scheme in ("file", "local") and netloc not in ("", "localhost"):
        raise argparse.ArgumentTypeError(
            f"{text!r} names a host ({netloc!r}), which file URLs do not reach; write a "
            "local or mounted path as file:///path (three slashes)"
        )
    return text
