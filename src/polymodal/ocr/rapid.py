"""The default OCR engine: PP-OCRv4 detection, the PP-OCR direction classifier and PP-OCRv4 Chinese/English
recognition, from the ONNX files inside the ``rapidocr-onnxruntime`` wheel, on ONNX Runtime.

Only the model files are used, found on disk without importing the package: its code imports ``cv2``, and
the OpenCV build it depends on (the GUI one) needs libGL, which a server may lack (see ``ocr.detect``).
Nothing is fetched: the files must be in the installed package (or in a directory named by the spec), and a
missing one is an error naming what to reinstall, never a download.

Detection runs on the picture shrunk to ``DET_MAX_SIDE`` on its long side; each line is then cut from the
full-resolution picture, so small print is recognised from every pixel it has. ``DET_MAX_SIDE`` was chosen
with benchmarks/ocr_speed.py: two 12 MP photos (4000 x 3000) carrying 24 lines each at 24, 36 and 56 px, on the
2-core machine while other jobs held it (load average ~11, so times are several times a quiet machine's; the
ratios hold):

    det max side   det time (median)   lines detected   lines read exactly
    960            1.16 s              65%              65%
    1280           2.37 s              98%              94%
    1600           2.80 s              100%             96%
    2048           5.36 s              100%             100%

At 960 the 24 px lines are lost; 1600 finds every line and reads all but the odd 24 px one at about half of
2048's time.
benchmarks/RESULTS.md (section ocr_speed) has the latest run.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.errors import MissingDependencyError, ModelLoadError
from polymodal.ocr.base import EngineBackend, OcrEngine
from polymodal.ocr.types import EngineReading, OcrLine
from polymodal.registry import Spec

#: long side of the picture the detector sees (see the module docstring for the measurement)
DET_MAX_SIDE = 1600
#: a small picture is enlarged until its short side is this long (within DET_MAX_SIDE), as rapidocr does:
#: text in a 300 px thumbnail is too thin for the detector at its own size
DET_MIN_SIDE = 736
#: the classifier turns a line upside down when it is this sure the line is at 180°
CLS_THRESHOLD = 0.9
#: recognised lines less sure than this are dropped (rapidocr's ``text_score``)
TEXT_THRESHOLD = 0.5
#: lines per classifier / recogniser batch: crops of one batch are padded to the widest, and 6 keeps the
#: padding small once sorted by aspect ratio (PaddleOCR's default)
BATCH = 6
#: input height of the classifier and recogniser, and the classifier's fixed width
CLS_HEIGHT, CLS_WIDTH = 48, 192
REC_HEIGHT, REC_MIN_WIDTH = 48, 320

#: file names inside the rapidocr-onnxruntime wheel, and in a directory given as ``rapid:DIR``
BUNDLED = {"det": "ch_PP-OCRv4_det_infer.onnx", "cls": "ch_ppocr_mobile_v2.0_cls_infer.onnx",
           "rec": "ch_PP-OCRv4_rec_infer.onnx"}
IN_DIRECTORY = {"det": "det.onnx", "cls": "cls.onnx", "rec": "rec.onnx"}


def bundled_models() -> dict[str, Path]:
    """The model files inside the installed rapidocr-onnxruntime package, found without importing it."""
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("rapidocr-onnxruntime", "OCR (its bundled PP-OCR models)")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    return {role: folder / name for role, name in BUNDLED.items()}


class RapidEngine(OcrEngine):
    def __init__(self, models: dict[str, Path], name: str = "rapid", threads: int | None = None,
                 det_max_side: int = DET_MAX_SIDE) -> None:
        from polymodal.models.runtime import OnnxRunner

        missing = [str(p) for p in models.values() if not p.is_file()]
        if missing:
            raise ModelLoadError(f"OCR engine {name}: model file(s) missing: {', '.join(missing)} (nothing is "
                                 "downloaded; reinstall rapidocr-onnxruntime, or give a directory that holds them)")
        self.name = name
        self.det_max_side = det_max_side
        try:
            self._det = OnnxRunner(models["det"], threads)
            self._cls = OnnxRunner(models["cls"], threads)
            self._rec = OnnxRunner(models["rec"], threads)
            meta = self._rec.session.get_modelmeta().custom_metadata_map
        except Exception as exc:
            raise ModelLoadError(f"OCR engine {name}: cannot load its ONNX models: {exc}") from exc
        if "character" not in meta:
            raise ModelLoadError(f"OCR engine {name}: {models['rec']} carries no 'character' list in its metadata")
        # CTC classes: 0 is the blank, then the dictionary, then a space (PaddleOCR's use_space_char)
        self._chars = ["", *meta["character"].splitlines(), " "]

    def read(self, image: Any, limit: int | None = None) -> EngineReading:
        from polymodal.ocr import detect

        w, h = image.size
        det = detect.prepare(image, self.det_max_side, DET_MIN_SIDE)
        prob = self._det({"x": det.tensor})[0, 0]
        found = detect.boxes_from_map(prob, det, w, h)
        capped = limit is not None and len(found) > limit
        if capped:
            # the largest lines are the ones a person would read first (and search for)
            found = sorted(found, key=lambda f: _quad_area(f[0]), reverse=True)[:limit]
        if not found:
            return EngineReading([])
        crops = [detect.crop(image, quad) for quad, _ in found]
        crops = self._upright(crops)
        texts = self._recognise(crops)
        lines = []
        for (quad, _), (text, conf) in zip(found, texts):
            if conf < TEXT_THRESHOLD or not text.strip():
                continue
            q = tuple((float(x), float(y)) for x, y in quad)
            box = (math.floor(quad[:, 0].min()), math.floor(quad[:, 1].min()),
                   math.ceil(quad[:, 0].max()), math.ceil(quad[:, 1].max()))
            lines.append(OcrLine(text=text.strip(), confidence=conf, box=box, quad=q))
        return EngineReading(lines, capped)

    def _upright(self, crops: list[Any]) -> list[Any]:
        """Crops the direction classifier sees at 180° turned the right way up."""
        from PIL import Image

        order = np.argsort([c.width / c.height for c in crops], kind="stable")
        out = list(crops)
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            batch = np.stack([_normalised(crops[i], CLS_HEIGHT, CLS_WIDTH) for i in idx])
            probs = self._cls({"x": batch})
            for i, p in zip(idx, probs):
                if int(np.argmax(p)) == 1 and float(p[1]) > CLS_THRESHOLD:
                    out[i] = crops[i].transpose(Image.Transpose.ROTATE_180)
        return out

    def _recognise(self, crops: list[Any]) -> list[tuple[str, float]]:
        order = np.argsort([c.width / c.height for c in crops], kind="stable")
        out: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            ratio = max(REC_MIN_WIDTH / REC_HEIGHT, *(crops[i].width / crops[i].height for i in idx))
            width = int(REC_HEIGHT * ratio)
            batch = np.stack([_normalised(crops[i], REC_HEIGHT, width) for i in idx])
            probs = self._rec({"x": batch})
            for i, p in zip(idx, probs):
                out[i] = self._ctc(p)
        return out

    def _ctc(self, probs: np.ndarray) -> tuple[str, float]:
        """Greedy CTC: the best class per step, repeats merged, blanks dropped; confidence is the mean
        probability of the characters kept."""
        best = probs.argmax(axis=1)
        keep = best != 0
        keep[1:] &= best[1:] != best[:-1]
        if not keep.any():
            return "", 0.0
        text = "".join(self._chars[c] if c < len(self._chars) else "" for c in best[keep])
        return text, float(probs.max(axis=1)[keep].mean())


def _normalised(crop: Any, height: int, width: int) -> np.ndarray:
    """A crop resized to ``height`` (aspect kept, at most ``width`` wide), scaled to [-1, 1] and padded with
    zeros on the right to ``width``: (3, height, width)."""
    from PIL import Image

    w = min(width, max(1, math.ceil(height * crop.width / crop.height)))
    arr = np.asarray(crop.resize((w, height), Image.Resampling.BILINEAR), dtype=np.float32)
    out = np.zeros((3, height, width), dtype=np.float32)
    out[:, :, :w] = (arr.transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    return out


def _quad_area(quad: np.ndarray) -> float:
    x, y = quad[:, 0], quad[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def _load(spec: Spec) -> OcrEngine:
    if spec.target:
        folder = Path(spec.target).expanduser()
        if not folder.is_dir():
            raise ModelLoadError(f"OCR engine {spec.raw}: {spec.target} is not a directory")
        return RapidEngine({role: folder / name for role, name in IN_DIRECTORY.items()}, name=spec.raw)
    return RapidEngine(bundled_models())


def _is_ppocr_dir(path: Path) -> bool:
    return all((path / name).is_file() for name in IN_DIRECTORY.values())


BACKEND = EngineBackend(
    scheme="rapid",
    description="PP-OCRv4 detection + Chinese/English recognition on ONNX Runtime, offline (rapidocr-onnxruntime's "
    "models)",
    examples=("rapid", "rapid:DIR"),
    load=_load,
    detect_dir=_is_ppocr_dir,
)
