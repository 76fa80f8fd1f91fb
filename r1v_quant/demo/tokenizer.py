"""The demo checkpoint's tokenizer: the real Qwen2 byte-level BPE, plus the chat model's tokens.

The vocabulary and merges are shipped in ``data/qwen2-vocab.json.gz``, rebuilt
from llama.cpp's ``ggml-vocab-qwen2.gguf`` (see ``tools/extract_qwen2_vocab.py``).
The pipeline is Qwen2's: NFC, the Qwen2 split regex, byte-level BPE.  On top
come the added tokens an InternVL-style chat model carries (``<img>``,
``</img>``, ``<IMG_CONTEXT>``, boxes and refs) and R1's ``<think>``/``</think>``,
and a ChatML chat template whose generation prompt opens the reasoning.
"""

from __future__ import annotations

import gzip
import json
from functools import lru_cache
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

VOCAB_FILE = Path(__file__).parent / "data" / "qwen2-vocab.json.gz"
QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
IMG_START, IMG_END, IMG_CONTEXT = "<img>", "</img>", "<IMG_CONTEXT>"
# what write_tokenizer_files writes
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json")
R1_DISTILL_BOS = "<｜begin▁of▁sentence｜>"  # DeepSeek-R1-Distill-Qwen's BOS (id 151646 there)
# (content, special): special tokens are dropped when decoding with skip_special_tokens
EXTRA_TOKENS: list[tuple[str, bool]] = [
    (IMG_START, True), (IMG_END, True), (IMG_CONTEXT, True),
    ("<quad>", True), ("</quad>", True), ("<ref>", True), ("</ref>", True), ("<box>", True), ("</box>", True),
    ("<think>", False), ("</think>", False),
]
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant. Think step by step, then answer.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n<think>\\n' }}{%- endif -%}"
)


@lru_cache(maxsize=1)
def load_vocab() -> dict:
    with gzip.open(VOCAB_FILE, "rt", encoding="utf-8") as f:
        return json.load(f)


def added_tokens(bos: str | None = None) -> list[tuple[int, str, bool]]:
    """(id, content, special) of every token after the BPE vocabulary; ``bos`` (if any) right after
    Qwen2's three control tokens, where DeepSeek-R1-Distill-Qwen has its ``<｜begin▁of▁sentence｜>``."""
    data = load_vocab()
    first = len(data["tokens"])
    entries = [(t, True) for t in data["control_tokens"]] + ([(bos, True)] if bos else []) + EXTRA_TOKENS
    return [(first + i, content, special) for i, (content, special) in enumerate(entries)]


def build_tokenizer(bos: str | None = None) -> Tokenizer:
    data = load_vocab()
    vocab = {tok: i for i, tok in enumerate(data["tokens"])}
    merges = [tuple(m.split(" ", 1)) for m in data["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    byte_level = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.post_processor = byte_level
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tokens = added_tokens(bos)
    for _id, content, special in tokens:
        tok.add_tokens([AddedToken(content, special=special, normalized=False)])
    if bos:  # every encoded text starts with it
        bos_id = next(i for i, c, _ in tokens if c == bos)
        tok.post_processor = processors.Sequence([byte_level, processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1", special_tokens=[(bos, bos_id)])])
    return tok


def write_tokenizer_files(out: Path, model_max_length: int, bos: str | None = None) -> None:
    """tokenizer.json (fast), vocab.json + merges.txt (slow), tokenizer_config.json, special_tokens_map.json.

    ``bos``: a BOS token the tokenizer adds to every text, as DeepSeek-R1-Distill-Qwen's does
    (:data:`R1_DISTILL_BOS`); none by default, as Qwen2's."""
    data = load_vocab()
    build_tokenizer(bos).save(str(out / "tokenizer.json"))
    vocab = {tok: i for i, tok in enumerate(data["tokens"])}
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(data["merges"]) + "\n", encoding="utf-8")
    decoder = {
        str(i): {"content": c, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                 "special": special}
        for i, c, special in added_tokens(bos)
    }
    config = {
        "add_bos_token": bos is not None,
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>", IMG_START, IMG_END, IMG_CONTEXT],
        "bos_token": bos,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": model_max_length,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    special = {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
               "additional_special_tokens": config["additional_special_tokens"]}
    if bos:
        special["bos_token"] = bos
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def token_id(content: str) -> int:
    for i, c, _ in added_tokens():
        if c == content:
            return i
    raise KeyError(content)
