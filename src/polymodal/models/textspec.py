"""An encoder's tokenizer as a ``tokenizer.json`` plus a small JSON spec, and the torch-free tokenizer that reads them.

``export_tokenizer`` runs once, with the backend loaded (transformers / open_clip); ``BundleTokenizer`` then
gives the ids the backend's own ``text_inputs`` gives, with only ``tokenizers``, numpy and the standard library.

What a ``tokenizers.Tokenizer`` cannot hold lives in the spec: padding (to the longest text or to the context),
which arrays the text network reads, whether an over-long text is refused (open_clip's HF-hub tokenizers never
refuse), and the Python-side text cleaning (``clean``) that runs before the tokenizer: open_clip's cleaners, and
transformers' ``SiglipTokenizer`` (a sentencepiece tokenizer with no ``tokenizers`` backend), whose text
preparation and sentencepiece normalisation are redone in Python (``SiglipText``) in front of a ``tokenizers``
Unigram (or BPE) model built from its ``.model`` file.

open_clip's CLIP cleaning starts with ``ftfy.fix_text``. ftfy is not a runtime dependency here, so
``fix_text`` below redoes its table-driven fixes with the standard library (HTML entities, C1 controls,
ligatures, full/half-width forms, curly quotes, line breaks, surrogates, terminal escapes, control characters,
NFC). It leaves out ftfy's mojibake repair (``fix_encoding``: re-decoding text such as "cafÃ©" that was
decoded with the wrong codec), a heuristic built on ftfy's own character-class tables; such a text may
tokenize differently here than in open_clip.
"""

from __future__ import annotations

import html
import json
import re
import string
import struct
import threading
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polymodal.errors import ModelLoadError, TextTooLongError

if TYPE_CHECKING:
    from polymodal.models.base import Encoder

TOKENIZER_FILE = "tokenizer.json"
#: bump when the meaning of a spec key changes; BundleTokenizer refuses specs newer than it reads
SPEC_VERSION = 1
OUTPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")

# CLIP's pre-tokenisation (OpenAI's simple_tokenizer.py) without its special-token alternatives, which the
# Tokenizer matches as added tokens. Python's ``regex`` ran it with IGNORECASE, which matters for the
# contractions and for one character: U+0345 (combining ypogegrammeni, whose case fold is the letter iota) then
# matches neither the letter class nor its complement, so CLIP drops it. Checked code point by code point
# against open_clip's pattern up to U+2FFFF.
CLIP_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}\x{0345}]+"


# --- ftfy's table-driven fixes, from ftfy 6 (chardata.py, fixes.py), in the order fix_and_explain applies them.

def _html_entities() -> dict[str, str]:
    # ftfy also decodes an entity whose name was upper-cased (&EACUTE;) when that is unambiguous.
    out = {}
    for name, char in html.entities.html5.items():
        if name.endswith(";"):
            out["&" + name] = char
            if name == name.lower() and html.unescape("&" + name.upper()) == "&" + name.upper():
                out["&" + name.upper()] = char.upper()
    return out


_ENTITIES = _html_entities()
_ENTITY_RE = re.compile(r"&#?[0-9A-Za-z]{1,24};")
_C1_RE = re.compile(r"[\x80-\x9f]")
_LIGATURES = str.maketrans({
    "Ĳ": "IJ", "ĳ": "ij", "ŉ": "ʼn", "Ǳ": "DZ", "ǲ": "Dz", "ǳ": "dz", "Ǆ": "DŽ", "ǅ": "Dž", "ǆ": "dž",
    "Ǉ": "LJ", "ǈ": "Lj", "ǉ": "lj", "Ǌ": "NJ", "ǋ": "Nj", "ǌ": "nj",
    "ﬀ": "ff", "ﬁ": "fi", "ﬂ": "fl", "ﬃ": "ffi", "ﬄ": "ffl", "ﬅ": "ſt", "ﬆ": "st",
})
_WIDTH = {0x3000: " "} | {
    i: unicodedata.normalize("NFKC", chr(i)) for i in range(0xFF01, 0xFFF0)
    if unicodedata.normalize("NFKC", chr(i)) != chr(i)
}
_SINGLE_QUOTE_RE = re.compile("[\u02bc\u2018-\u201b]")
_DOUBLE_QUOTE_RE = re.compile("[\u201c-\u201f]")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_SURROGATE_PAIR_RE = re.compile("[\ud800-\udbff][\udc00-\udfff]")
_ANSI_RE = re.compile("\033\\[((?:\\d|;)*)([a-zA-Z])")
_CONTROL: dict[int, None] = dict.fromkeys(
    [*range(0x00, 0x09), 0x0B, *range(0x0E, 0x20), 0x7F, *range(0x206A, 0x2070), 0xFEFF, *range(0xFFF9, 0xFFFD)]
)


def _unescape_entity(match: re.Match[str]) -> str:
    text = match.group(0)
    if text in _ENTITIES:
        return _ENTITIES[text]
    if text.startswith("&#"):
        out = html.unescape(text)
        return text if ";" in out else out  # a numeric reference html.unescape could not consume whole
    return text


def _c1(match: re.Match[str]) -> str:
    # ftfy's "sloppy-windows-1252": the five bytes cp1252 leaves undefined stay as they are.
    try:
        return match.group(0).encode("latin-1").decode("cp1252")
    except UnicodeDecodeError:
        return match.group(0)


def _surrogate_pair(match: re.Match[str]) -> str:
    pair = match.group(0)
    return chr(0x10000 + (ord(pair[0]) - 0xD800) * 0x400 + (ord(pair[1]) - 0xDC00))


def _fix_segment(text: str, unescape: bool) -> str:
    while True:
        before = text
        if unescape:
            text = _ENTITY_RE.sub(_unescape_entity, text)
        text = _C1_RE.sub(_c1, text)
        text = text.translate(_LIGATURES).translate(_WIDTH)
        text = _SINGLE_QUOTE_RE.sub("'", _DOUBLE_QUOTE_RE.sub('"', text))
        for old in ("\r\n", "\r", "\u2028", "\u2029", "\u0085"):
            text = text.replace(old, "\n")
        if _SURROGATE_RE.search(text):
            text = _SURROGATE_RE.sub("\ufffd", _SURROGATE_PAIR_RE.sub(_surrogate_pair, text))
        text = _ANSI_RE.sub("", text).translate(_CONTROL)
        text = unicodedata.normalize("NFC", text)
        if text == before:
            return text


def fix_text(text: str) -> str:
    """``ftfy.fix_text`` without its mojibake repair (see the module docstring)."""
    out, pos, unescape = [], 0, True
    while pos < len(text):
        end = text.find("\n", pos) + 1 or len(text)
        segment = text[pos:end]
        # ftfy: once a line holds "<" the text may be HTML, and entities are left alone from there on.
        unescape = unescape and "<" not in segment
        out.append(_fix_segment(segment, unescape))
        pos = end
    return "".join(out)


def _basic_clean(text: str) -> str:
    return html.unescape(html.unescape(fix_text(text))).strip()


def _clean_whitespace(text: str) -> str:
    return " ".join(_basic_clean(text).split())


def _clean_lower(text: str) -> str:
    return _clean_whitespace(text).lower()


_PUNCTUATION = str.maketrans("", "", string.punctuation)


def _clean_canonicalize(text: str) -> str:
    # big_vision's canonicalize_text, as open_clip applies it for SigLIP.
    return " ".join(_basic_clean(text).replace("_", " ").translate(_PUNCTUATION).lower().split())


#: open_clip's ``clean`` names (tokenizer.get_clean_fn) -> what they do
CLEANERS: dict[str, Callable[[str], str]] = {
    "lower": _clean_lower, "whitespace": _clean_whitespace, "canonicalize": _clean_canonicalize,
}


# --- transformers' SiglipTokenizer, up to the text its sentencepiece model segments


class CharsMap:
    """sentencepiece's normaliser (``normalizer.cc``): the rules of a ``precompiled_charsmap``, longest match
    first, then its whitespace rules (runs of spaces collapsed, trailing spaces dropped).

    The rules are a darts-clone double-array trie over UTF-8 bytes, followed by the replacement strings. They run
    here, not as tokenizers' ``Precompiled``, because that looks a whole grapheme up and keeps only the rule of its
    first character: it drops the combining mark of "ｈ̟" where sentencepiece keeps it."""

    def __init__(self, blob: bytes) -> None:
        (size,) = struct.unpack_from("<I", blob) if blob else (0,)  # no charsmap: the whitespace rules only
        self._units = struct.unpack_from(f"<{size // 4}I", blob, 4) if size else (0,)
        self._strings = blob[4 + size:]
        self._starts: dict[str, bool] = {}  # whether a character begins any rule, learnt as it is met

    def _longest(self, data: bytes, start: int) -> tuple[int, int]:
        """(length in bytes, replacement offset) of the longest rule matching at ``start``; length 0 for none."""
        units, best = self._units, (0, 0)
        pos = _offset(units[0])
        for i in range(start, len(data)):
            pos ^= data[i]
            if pos >= len(units):
                break
            unit = units[pos]
            if unit & 0x800000FF != data[i]:  # the unit's label is not this byte
                break
            pos ^= _offset(unit)
            if unit >> 8 & 1:  # a rule ends here; its value sits in the next unit
                best = (i + 1 - start, units[pos] & 0x7FFFFFFF)
        return best

    def _begins_rule(self, char: str) -> bool:
        if char not in self._starts:
            data, pos = char.encode("utf-8"), _offset(self._units[0])
            for byte in data:
                pos ^= byte
                unit = self._units[pos] if pos < len(self._units) else -1
                if unit & 0x800000FF != byte:
                    self._starts[char] = False
                    break
                pos ^= _offset(unit)
            else:
                self._starts[char] = True
        return self._starts[char]

    def normalize(self, text: str) -> str:
        """``text`` as sentencepiece normalises it after a non-space (SiglipTokenizer encodes "<unk>" + text)."""
        pieces: list[str] = []
        data = text.encode("utf-8", "surrogatepass")
        i = at = synced = 0  # ``at``: the byte offset of character ``synced``, brought up to ``i`` when needed
        while i < len(text):
            char = text[i]
            if not self._begins_rule(char):
                pieces.append(char)
                i += 1
                continue
            at += len(text[synced:i].encode("utf-8", "surrogatepass"))
            length, value = self._longest(data, at)
            if length == 0:
                pieces.append(char)
                length = len(char.encode("utf-8", "surrogatepass"))
            else:
                pieces.append(self._strings[value:self._strings.index(0, value)].decode("utf-8"))
            i += len(data[at:at + length].decode("utf-8", "surrogatepass"))
            at += length
            synced = i
        out, prev_space = [], False
        for piece in pieces:
            if prev_space:
                piece = piece.lstrip(" ")
            if piece:
                out.append(piece)
                prev_space = piece.endswith(" ")
        return "".join(out).rstrip(" ")


def _offset(unit: int) -> int:
    return (unit >> 10) << ((unit & (1 << 9)) >> 6)


class SiglipText:
    """What transformers' ``SiglipTokenizer`` gives its sentencepiece model, as one string for the Tokenizer.

    SiglipTokenizer splits the text at its added tokens (``</s>``, ``<unk>``), canonicalises each other part
    (big_vision's ``canonicalize_text``: lower case, ASCII punctuation removed, whitespace collapsed, stripped;
    unlike open_clip's ``canonicalize`` no ftfy and no HTML unescaping, and "_" is removed, not made a space), and
    encodes each part as ``"<unk>" + part`` to drop the ``<unk>`` pieces again. The first part starts with "▁",
    which the normaliser makes a space; the others do not. It adds ``</s>`` unless the ids already end with it.

    Two gaps, both for texts that spell out an added token: a part after an added token is segmented here on its
    own, there glued to the pieces of "<unk>", which differ only where the vocabulary has a piece across that
    join; and full-width forms the normaliser turns into an added token's text (＜／ｓ＞) are read as that token
    here, as plain pieces there."""

    def __init__(self, specials: list[dict[str, Any]], eos: str, lower: bool, charsmap: CharsMap) -> None:
        self.strip = {str(s["content"]): (bool(s.get("lstrip")), bool(s.get("rstrip"))) for s in specials}
        self.eos, self.lower, self.charsmap = eos, lower, charsmap
        # transformers' Trie: the leftmost added token, the longest one at that place
        names = sorted(self.strip, key=len, reverse=True)
        self._split = re.compile("(" + "|".join(map(re.escape, names)) + ")") if names else None

    def _part(self, text: str, first: bool) -> str:
        if self.lower:
            text = text.lower()
        text = " ".join(text.translate(_PUNCTUATION).split())
        return self.charsmap.normalize(" " + text if first else text)

    def __call__(self, text: str) -> str:
        text = text.replace("▁", " ")
        parts = self._split.split(text) if self._split else [text]
        for i in range(1, len(parts), 2):  # odd places hold the added tokens
            lstrip, rstrip = self.strip[parts[i]]
            if lstrip:
                parts[i - 1] = parts[i - 1].rstrip()
            if rstrip:
                parts[i + 1] = parts[i + 1].lstrip()
        out = [parts[i] if i % 2 else self._part(parts[i], first=i == 0) for i in range(len(parts))]
        while len(out) > 1 and not out[-1]:
            out.pop()
        if len(out) > 1 and out[-1] == self.eos:
            out.pop()  # the Tokenizer's template adds it back
        return "".join(out)


# --- reading a bundle


class BundleTokenizer:
    """Token ids for a bundled text network, equal to the source encoder's ``text_inputs``."""

    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        from tokenizers import Tokenizer

        path = Path(folder) / str(config.get("file", TOKENIZER_FILE))
        charsmap = None
        try:
            text = path.read_text(encoding="utf-8")
            if config.get("clean") == "siglip":
                # SiglipText runs the sentencepiece normaliser itself (see CharsMap); the file keeps it for the record
                text, charsmap = _without_normalizer(text)
            self._plain = Tokenizer.from_str(text)
        except Exception as exc:  # noqa: BLE001 - tokenizers raises a bare Exception, missing or malformed
            raise ModelLoadError(f"cannot read the tokenizer {path}: {exc}") from None
        try:
            if int(config.get("version", 1)) > SPEC_VERSION:
                raise ValueError(f"version {config['version']}, this polymodal reads {SPEC_VERSION}")
            self.context_length = int(config["context_length"])
            self.padding = _choice(config, "padding", ("longest", "max_length"))
            self.padding_side = _choice(config, "padding_side", ("right", "left"))
            self.outputs = [_choice({"outputs": n}, "outputs", OUTPUT_NAMES) for n in config["outputs"]]
            self.pad_id = int(config["pad_id"])
            self.pad_type_id = int(config.get("pad_type_id", 0))
            self.check_length = bool(config.get("check_length", True))
            clean = config.get("clean")
            self._clean: Callable[[str], str] | None = None
            if clean == "siglip":
                args = config["siglip"]
                self._clean = SiglipText(list(args["specials"]), str(args["eos"]), bool(args["lower"]),
                                         CharsMap(charsmap or b""))
            elif clean is not None:
                self._clean = CLEANERS[_choice(config, "clean", (*CLEANERS, "siglip"))]
            strip = config.get("strip_sep_id")
            self.strip_sep_id = None if strip is None else int(strip)
            self._direction = _choice(config, "truncation_side", ("right", "left"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"the text section for {path} is not usable: {exc!s}") from None
        # A second, truncating tokenizer is parsed only when a text is longer than the context: parsing
        # tokenizer.json costs ~0.09 s for CLIP's BPE, a tenth of a search's second.
        self._text = text
        self._cut: Any = None
        self._cut_lock = threading.Lock()

    def _truncating(self) -> Any:
        with self._cut_lock:
            if self._cut is None:
                from tokenizers import Tokenizer

                cut = Tokenizer.from_str(self._text)
                cut.enable_truncation(self.context_length, direction=self._direction)
                self._cut = cut
        return self._cut

    def inputs(self, texts: list[str], truncate: bool) -> dict[str, np.ndarray]:
        """The arrays the text network reads, by name, int64, padded like the source encoder pads them.

        Raises TextTooLongError for a text longer than the context unless ``truncate`` (or the source
        encoder never refused long texts)."""
        cleaned = [self._clean(t) for t in texts] if self._clean else list(texts)
        encs = self._plain.encode_batch(cleaned)
        for text, enc in zip(texts, encs):
            if len(enc.ids) > self.context_length:
                if self.check_length and not truncate:
                    raise TextTooLongError(text, self.context_length, len(enc.ids))
                encs = self._truncating().encode_batch(cleaned)
                break
        longest = max((len(e.ids) for e in encs), default=0)
        width = self.context_length if self.padding == "max_length" else longest
        ids = np.full((len(encs), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encs), width), dtype=np.int64)
        types = np.full((len(encs), width), self.pad_type_id, dtype=np.int64)
        for row, enc in enumerate(encs):
            n = len(enc.ids)
            cols = slice(0, n) if self.padding_side == "right" else slice(width - n, width)
            ids[row, cols], mask[row, cols], types[row, cols] = enc.ids, enc.attention_mask, enc.type_ids
        if self.strip_sep_id is not None:
            ids[ids == self.strip_sep_id] = 0  # open_clip's strip_sep_token writes 0, not the pad id
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return {name: arrays[name] for name in self.outputs}


def _without_normalizer(text: str) -> tuple[str, bytes | None]:
    """A tokenizer.json without its normaliser, and the sentencepiece charsmap that normaliser held."""
    import base64

    data = json.loads(text)
    norm = data.get("normalizer") or {}
    steps = norm.get("normalizers", []) if norm.get("type") == "Sequence" else [norm]
    maps = [step["precompiled_charsmap"] for step in steps if step.get("type") == "Precompiled"]
    data["normalizer"] = None
    return json.dumps(data), base64.b64decode(maps[0]) if maps and maps[0] else None


def _choice(config: dict[str, Any], key: str, allowed: tuple[str, ...]) -> str:
    value = config.get(key, allowed[0])
    if value not in allowed:
        raise ValueError(f"{key} is {value!r}; expected one of {list(allowed)}")
    return str(value)


# --- writing a bundle (the backend is loaded, so transformers / open_clip may be imported here)


def export_tokenizer(encoder: Encoder, folder: Path) -> dict[str, Any]:
    """Write ``folder / tokenizer.json`` and return the spec (the bundle's "text" section) that reads it."""
    from polymodal.models.hf import HFEncoder
    from polymodal.models.lite.encoder import LiteEncoder
    from polymodal.models.openclip import OpenCLIPEncoder

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # The encoder's own output names and order, rather than a copy of each backend's rules.
    outputs = list(encoder.text_inputs(["a"], True))
    if isinstance(encoder, LiteEncoder):
        from polymodal.models.lite.minilm import MAX_SEQ_LENGTH

        spec = _hf_spec(encoder.name, encoder.text.tokenizer, folder, MAX_SEQ_LENGTH, "longest")
    elif isinstance(encoder, HFEncoder):
        spec = _hf_spec(encoder.name, encoder.tokenizer, folder, int(encoder.context_length), encoder.padding)
    elif isinstance(encoder, OpenCLIPEncoder):
        spec = _open_clip_spec(encoder.name, encoder.tokenizer, folder, int(encoder.context_length))
    else:
        raise ModelLoadError(f"model {encoder.name}: no tokenizer export for the {encoder.backend!r} backend")
    return {"version": SPEC_VERSION, "file": TOKENIZER_FILE, **spec, "outputs": outputs}


def _backend_of(name: str, tok: Any) -> Any:
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise ModelLoadError(
            f"model {name}: its tokenizer {type(tok).__name__} is not backed by the `tokenizers` library "
            "(a sentencepiece or pure-Python tokenizer), so it cannot be saved as tokenizer.json"
        )
    return backend


def _save(backend: Any, folder: Path) -> None:
    from tokenizers import Tokenizer

    # transformers sets truncation and padding per call; the spec carries them instead.
    tok = Tokenizer.from_str(backend.to_str())
    tok.no_truncation()
    tok.no_padding()
    tok.save(str(folder / TOKENIZER_FILE))


def _hf_spec(name: str, tok: Any, folder: Path, context: int, padding: str, **extra: Any) -> dict[str, Any]:
    """A transformers tokenizer called as ``tok(texts, padding=..., truncation=True, max_length=context)``."""
    if tok.pad_token_id is None:
        raise ModelLoadError(f"model {name}: its tokenizer has no padding token")
    if _is_siglip(tok):
        if extra.get("clean"):
            raise ModelLoadError(f"model {name}: a SiglipTokenizer behind {extra['clean']!r} cleaning has no export")
        extra = {**extra, **_siglip_tokenizer(name, tok, folder)}
    else:
        _save(_backend_of(name, tok), folder)
    return {
        "context_length": context, "padding": padding, "pad_id": int(tok.pad_token_id),
        "pad_type_id": int(getattr(tok, "pad_token_type_id", 0) or 0),
        "padding_side": str(tok.padding_side), "truncation_side": str(tok.truncation_side),
        "check_length": True, "clean": None, "strip_sep_id": None, **extra,
    }


def _open_clip_spec(name: str, tok: Any, folder: Path, context: int) -> dict[str, Any]:
    import open_clip.tokenizer as oct

    # OpenCLIPEncoder only refuses long texts when the tokenizer has an ``encode`` (SimpleTokenizer).
    check = callable(getattr(tok, "encode", None))
    if isinstance(tok, oct.SimpleTokenizer):
        if tok.reduction_fn is not None:
            raise ModelLoadError(f"model {name}: open_clip's {tok.reduction_fn.__name__} drops tokens at random")
        _save(_clip_bpe(tok), folder)
        return {"context_length": context, "padding": "max_length", "pad_id": 0, "pad_type_id": 0,
                "padding_side": "right", "truncation_side": "right", "check_length": check,
                "clean": _clean_name(name, tok.clean_fn), "strip_sep_id": None}
    if isinstance(tok, oct.HFTokenizer):
        if tok.tokenizer_mode:
            raise ModelLoadError(f"model {name}: open_clip's tokenizer_mode {tok.tokenizer_mode!r} has no export")
        strip = int(tok.tokenizer.sep_token_id) if tok.strip_sep_token else None
        return _hf_spec(name, tok.tokenizer, folder, context, "max_length",
                        check_length=check, clean=_clean_name(name, tok.clean_fn), strip_sep_id=strip)
    if isinstance(tok, oct.SigLipTokenizer):
        return _hf_spec(name, tok.tokenizer, folder, context, "max_length", check_length=check, clean="canonicalize")
    raise ModelLoadError(f"model {name}: no tokenizer export for open_clip's {type(tok).__name__}")


def _clean_name(name: str, fn: Any) -> str:
    import open_clip.tokenizer as oct

    known = {oct._clean_lower: "lower", oct._clean_whitespace: "whitespace", oct._clean_canonicalize: "canonicalize"}
    if fn not in known:
        raise ModelLoadError(f"model {name}: open_clip text cleaning {getattr(fn, '__name__', fn)!r} has no export")
    return known[fn]


def _clip_bpe(tok: Any) -> Any:
    """open_clip's SimpleTokenizer (OpenAI's CLIP BPE) as a ``tokenizers`` byte-level BPE.

    The same construction transformers uses for CLIPTokenizer, minus its normaliser: open_clip's cleaning
    (ftfy, HTML, whitespace, lower case) runs in Python first, as the spec's ``clean``."""
    from tokenizers import AddedToken, Regex, Tokenizer, models, pre_tokenizers, processors

    merges = sorted(tok.bpe_ranks, key=tok.bpe_ranks.get)
    bpe = Tokenizer(models.BPE(vocab=dict(tok.encoder), merges=merges, continuing_subword_prefix="",
                               end_of_word_suffix="</w>", fuse_unk=False))
    bpe.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(CLIP_SPLIT), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    specials = [tok.decoder[i] for i in tok.all_special_ids]
    # open_clip's regex keeps a special token's text whole and its BPE cache maps it to its own id.
    bpe.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    sot, eot = tok.decoder[tok.sot_token_id], tok.decoder[tok.eot_token_id]
    bpe.post_processor = processors.TemplateProcessing(
        single=f"{sot} $A {eot}", special_tokens=[(sot, tok.sot_token_id), (eot, tok.eot_token_id)]
    )
    return bpe


# --- transformers' SiglipTokenizer: its sentencepiece model as a tokenizers model

_NORMAL, _USER_DEFINED = 1, 4  # sentencepiece's piece types


def _is_siglip(tok: Any) -> bool:
    try:
        from transformers import SiglipTokenizer  # a placeholder class when sentencepiece is missing
    except ImportError:
        return False
    return isinstance(tok, SiglipTokenizer)


def _siglip_tokenizer(name: str, tok: Any, folder: Path) -> dict[str, Any]:
    """Write tok's sentencepiece model as tokenizer.json; return the spec keys of its ``siglip`` cleaning."""
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers, processors

    proto = sentencepiece_model_pb2.ModelProto.FromString(  # type: ignore[attr-defined]  # generated by protoc
        tok.sp_model.serialized_model_proto())
    norm, trainer = proto.normalizer_spec, proto.trainer_spec
    why = [reason for reason, bad in [
        ("it samples segmentations (sp_model_kwargs)", bool(getattr(tok, "sp_model_kwargs", None))),
        (f"model type {trainer.model_type} (not unigram or BPE)", trainer.model_type not in (1, 2)),
        ("it keeps extra whitespace", not norm.remove_extra_whitespaces),
        ("it does not escape whitespace", not norm.escape_whitespaces),
        ("it treats whitespace as a suffix", trainer.treat_whitespace_as_suffix),
        ("it has user-defined pieces", any(p.type == _USER_DEFINED for p in proto.pieces)),
        ("an added token is single_word", any(a.single_word for a in tok.added_tokens_decoder.values())),
    ] if bad]
    if why:
        raise ModelLoadError(f"model {name}: its sentencepiece tokenizer has no export: {'; '.join(why)}")
    if trainer.model_type == 1:
        model: Any = models.Unigram([(p.piece, p.score) for p in proto.pieces], unk_id=trainer.unk_id,
                                    byte_fallback=trainer.byte_fallback)
    else:
        model = models.BPE({p.piece: i for i, p in enumerate(proto.pieces)}, _spm_merges(proto),
                           unk_token=trainer.unk_piece, fuse_unk=True, byte_fallback=trainer.byte_fallback)
    spm = Tokenizer(model)
    # sentencepiece's own normaliser, for a reader of this file alone; BundleTokenizer runs it in Python instead
    spm.normalizer = normalizers.Sequence([
        *([normalizers.Precompiled(norm.precompiled_charsmap)] if norm.precompiled_charsmap else []),
        normalizers.Replace(Regex(" {2,}"), " "), normalizers.Replace(Regex(" +\\z"), ""),
    ])
    # No split at "▁": sentencepiece segments the whole text in one lattice (a piece never spans a "▁" inside).
    spm.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=False)
    added = sorted(tok.added_tokens_decoder.items())
    spm.add_tokens([AddedToken(a.content, special=a.special, normalized=False) for _, a in added])
    wrong = [a.content for i, a in added if spm.token_to_id(a.content) != i]
    if wrong:
        raise ModelLoadError(f"model {name}: its added tokens {wrong} have ids outside the sentencepiece model")
    eos = str(tok.eos_token)
    spm.post_processor = processors.TemplateProcessing(single=f"$A {eos}", special_tokens=[(eos, tok.eos_token_id)])
    spm.save(str(folder / TOKENIZER_FILE))
    specials = [{"content": a.content, "lstrip": a.lstrip, "rstrip": a.rstrip} for _, a in added]
    return {"clean": "siglip", "siglip": {"specials": specials, "eos": eos, "lower": bool(tok.do_lower_case)}}


def _spm_merges(proto: Any) -> list[tuple[str, str]]:
    """A sentencepiece BPE model's merges: sentencepiece joins the pair whose joined piece scores highest."""
    normal = {p.piece: (-p.score, i) for i, p in enumerate(proto.pieces) if p.type == _NORMAL}
    ranked = sorted((rank, piece[:k], piece[k:]) for piece, rank in normal.items() for k in range(1, len(piece))
                    if piece[:k] in normal and piece[k:] in normal)
    return [(left, right) for _, left, right in ranked]

