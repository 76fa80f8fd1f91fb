"""The checkpoint's tokenizer as llama.cpp's BPE ("gpt2") vocabulary keys, as its converter writes them.

* Tokens and token types: read from the tokenizer the way the converter's ``get_vocab_base`` does
  (that code lives in ``convert_hf_to_gguf.py``, not in gguf-py, so it is done here): every id up to
  the embedding's rows, holes padded with ``[PAD{i}]`` (UNUSED), added tokens CONTROL when special or
  special-looking, USER_DEFINED otherwise.
* ``tokenizer.ggml.pre``: the converter names the pre-tokenizer by hashing an encoded test text; on
  the Qwen2 vocabulary its known hashes differ only in the special ids a tokenizer wraps a text in,
  so :func:`pre_tokenizer_name` asks the tokenizer that (table in :mod:`r1v_quant.formats.gguf_names`).
* Merges, special token ids and the chat template: gguf-py's ``SpecialVocab``, the class the
  converter itself hands them to the writer with.  Not the add-BOS/EOS/SEP flags, though: the
  converter runs the gguf-py vendored in llama.cpp, which has two rules the PyPI release (0.19.0)
  lacks -- a ``ByteLevel`` post-processor means no BOS/EOS (Qwen2's case), and the post-processor's
  flags win over ``tokenizer_config.json``'s -- so :func:`add_special_flags` computes those.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gguf import SpecialVocab, TokenType

from ...errors import InputError
from ...formats.gguf_names import DEFAULT_PRE_TOKENIZER, PRE_TOKENIZER_BY_WRAP
from ...read.files import read_json, read_json_object
from ...read.tokenizer import load_tokenizer

PROBE_TEXT = "Hello world"
SPECIAL_TYPES = ("bos", "eos", "unk", "sep", "pad", "cls", "mask")
FLAG_TYPES = ("bos", "eos", "sep")  # the add_*_token keys llama.cpp has


@dataclass
class Vocab:
    tokens: list[str]
    token_types: list[int]
    pre: str  # tokenizer.ggml.pre
    special: SpecialVocab  # merges, special ids, add flags, chat template


def _looks_special(token: str) -> bool:
    """Added tokens some tokenizers forget to mark special (the converter's list)."""
    return (token in ("<pad>", "<mask>", "<2mass>", "[@BOS@]")
            or (token.startswith("<|") and token.endswith("|>"))
            or (token.startswith("<\uff5c") and token.endswith("\uff5c>"))
            or (token.startswith("<unused") and token.endswith(">")))


def _template_special(piece: dict) -> str | None:
    """The special token of one piece of a tokenizer.json TemplateProcessing template."""
    return piece.get("SpecialToken", {}).get("id")


def add_special_flags(tc: dict[str, Any], tokenizer_json: dict[str, Any]) -> dict[str, bool]:
    """add_bos / add_eos / add_sep as the converter's gguf-py decides them, in the order it sets them:
    the post-processor first (ByteLevel: neither; TemplateProcessing: what its single and pair templates
    put around a text), then tokenizer_config.json's ``add_*_token`` for what is still open.  Takes the
    two files' top-level objects as parsed (a 7 MB tokenizer.json: 0.2 s a parse)."""
    add: dict[str, bool] = {}

    def content(entry: Any) -> str | None:
        if isinstance(entry, dict):
            entry = entry.get("content")
        return entry if isinstance(entry, str) else None

    names = {typ: content(tc.get(f"{typ}_token")) for typ in SPECIAL_TYPES}
    names["bos"] = names["bos"] or names["cls"]
    names["eos"] = names["eos"] or names["sep"]
    post = tokenizer_json.get("post_processor") or {}
    for proc in post.get("processors", [post]):
        kind = proc.get("type")
        if kind == "ByteLevel":
            add.setdefault("bos", False)
            add.setdefault("eos", False)
        elif kind == "TemplateProcessing":
            single = proc.get("single") or []
            first = last = None
            if len(single) > 1:
                first, last = _template_special(single[0]), _template_special(single[-1])
                if first:
                    names["bos"] = names["bos"] or first
                    add["bos"] = first in (names["bos"], names["cls"])
                if last:
                    names["eos"] = names["eos"] or last
                    add["eos"] = last == names["eos"]
            # the pair template ("A [sep] B", inside the single template's ends) decides add_sep
            pair = proc.get("pair") or []
            start = 1 if first and pair and _template_special(pair[0]) == first else 0
            stop = -1 if last and pair and _template_special(pair[-1]) == last else None
            pair = pair[start:stop]
            if len(pair) > 2 and [p.get("Sequence", {}).get("id") for p in (pair[0], pair[-1])] == ["A", "B"]:
                middle = [_template_special(p) for p in pair[1:-1]]
                seps = {names["sep"], names["eos"]} - {None}
                add["sep"] = (middle[0] in seps and not last) or (len(middle) == 2 and middle[1] in seps)
    for typ in SPECIAL_TYPES:
        flag = tc.get(f"add_{typ}_token")
        if isinstance(flag, bool):
            add.setdefault(typ, flag)
    return {k: v for k, v in add.items() if k in FLAG_TYPES}


def read_vocab(model_dir: Path, n_vocab: int) -> Vocab:
    """The folder's tokenizer as llama.cpp's vocabulary, padded to ``n_vocab`` embedding rows."""
    tok = load_tokenizer(model_dir)
    vocab = tok.get_vocab()
    if not vocab or max(vocab.values()) >= n_vocab:
        raise InputError(f"{model_dir}: tokenizer has ids up to {max(vocab.values(), default=-1)}, "
                         f"but the embedding has only {n_vocab} rows")
    by_id = {i: t for t, i in vocab.items()}
    added = tok.get_added_vocab()
    decoder = tok.added_tokens_decoder
    tokens, types = [], []
    for i in range(n_vocab):
        token = by_id.get(i)
        if token is None:
            tokens.append(f"[PAD{i}]")
            types.append(int(TokenType.UNUSED))
            continue
        kind = TokenType.NORMAL
        if token in added:
            info = decoder[i]
            if not info.normalized:  # llama.cpp expects added tokens pre-normalized
                token = tok.decode(tok.encode(token, add_special_tokens=False))
            if info.special or _looks_special(token):
                kind = TokenType.CONTROL
            else:
                kind = TokenType.USER_DEFINED
                token = token.replace("\u2581", " ")
        tokens.append(token)
        types.append(int(kind))
    # parsed here first: SpecialVocab would fail on a broken file with a traceback, this gives one line
    tokenizer_json = read_json_object(model_dir / "tokenizer.json")
    tokenizer_config = read_json_object(model_dir / "tokenizer_config.json")
    read_json(model_dir / "config.json")
    special = SpecialVocab(model_dir, load_merges=True)
    special.add_special_token = add_special_flags(tokenizer_config, tokenizer_json)
    return Vocab(tokens, types, pre_tokenizer_name(tok), special)


def pre_tokenizer_name(tok: Any) -> str:
    """``tokenizer.ggml.pre`` as llama.cpp's converter picks it, from the special ids ``tok`` wraps a
    text in (see :data:`~r1v_quant.formats.gguf_names.PRE_TOKENIZER_BY_WRAP`)."""
    full, plain = tok.encode(PROBE_TEXT), tok.encode(PROBE_TEXT, add_special_tokens=False)
    start = next((i for i in range(len(full) - len(plain) + 1) if full[i:i + len(plain)] == plain), None)
    if start is None:
        return DEFAULT_PRE_TOKENIZER
    wrap = (tuple(full[:start]), tuple(full[start + len(plain):]))
    return PRE_TOKENIZER_BY_WRAP.get(wrap, DEFAULT_PRE_TOKENIZER)
