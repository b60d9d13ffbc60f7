"""The decoding child: ``python -P -m polymodal.media.worker KIND /abs/path``, started by ``media.sandbox``.

It reads the decoder's parameters as one JSON object on stdin and writes one JSON header line, then raw
bytes; each kind's module says what its header holds and writes and reads both sides of it:

- ``audio`` (``media.audio``): ``{"info": ...}`` then the samples as mono float32, or ``{"no_audio": true}``;
- ``video`` (``media.video``): ``{"info": ...}`` for a probe; for an analysis also the cuts and segments,
  each segment with its frames' times and byte lengths, then the JPEG frames one after another; or
  ``{"no_video": true}`` for a container without a video track (which may hold audio);
- either: ``{"error": reason}`` and nothing after it, for media the decoder could not read.

An exception that escapes ends the child with status 1 and its traceback on stderr, whose last line the
caller reports, so nothing here catches or exits.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

from polymodal.media import audio, video

#: what runs in the child for each kind: (absolute path, parameters) -> (JSON header, payload bytes)
DECODERS: dict[str, Callable[[str, dict[str, Any]], tuple[dict[str, Any], bytes]]] = {
    "audio": audio.child_decode,
    "video": video.child_decode,
}


def main(argv: list[str] | None = None) -> None:
    kind, abspath = argv if argv is not None else sys.argv[1:]
    params = json.loads(sys.stdin.buffer.read())
    header, payload = DECODERS[kind](abspath, params)
    out = sys.stdout.buffer
    out.write(json.dumps(header).encode() + b"\n")
    out.write(payload)
    out.flush()


if __name__ == "__main__":
    main()
