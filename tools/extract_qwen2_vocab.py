"""Rebuild the shipped Qwen2 vocabulary from llama.cpp's test vocabulary file.

The demo checkpoints need the real Qwen2 byte-level BPE vocabulary and merges,
and model hubs are out of reach.  The ``llama-cpp-python`` source distribution
carries ``vendor/llama.cpp/models/ggml-vocab-qwen2.gguf`` (tokens, merges,
token types) with ``.inp``/``.out`` files of test strings and their token ids.
This script turns the GGUF into ``r1v_quant/demo/data/qwen2-vocab.json.gz``
(deterministic gzip) and copies the test pairs to ``tests/data/``.

    pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d /tmp/sdist
    tar xzf /tmp/sdist/llama_cpp_python-0.3.36.tar.gz -C /tmp/sdist
    python tools/extract_qwen2_vocab.py /tmp/sdist/llama_cpp_python-0.3.36
"""

from __future__ import annotations

import gzip
import json
import shutil
import sys
from pathlib import Path

import gguf

ROOT = Path(__file__).resolve().parents[1]


def main(sdist: Path) -> None:
    models = sdist / "vendor" / "llama.cpp" / "models"
    reader = gguf.GGUFReader(models / "ggml-vocab-qwen2.gguf")

    def strings(key: str) -> list[str]:
        field = reader.fields[key]
        return [bytes(field.parts[i]).decode("utf-8") for i in field.data]

    tokens = strings("tokenizer.ggml.tokens")
    types_field = reader.fields["tokenizer.ggml.token_type"]
    types = [int(types_field.parts[i][0]) for i in types_field.data]
    normal = [t for t, ty in zip(tokens, types) if ty == 1]
    assert normal == tokens[: len(normal)], "normal tokens are expected first"
    control = [t for t, ty in zip(tokens, types) if ty == 3]
    data = {
        "source": "llama.cpp vendor/llama.cpp/models/ggml-vocab-qwen2.gguf (llama-cpp-python 0.3.36 sdist)",
        "tokens": normal,
        "control_tokens": control,
        "merges": strings("tokenizer.ggml.merges"),
    }
    raw = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    out = ROOT / "r1v_quant" / "demo" / "data" / "qwen2-vocab.json.gz"
    with open(out, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw)
    for suffix in (".inp", ".out"):
        shutil.copyfile(models / f"ggml-vocab-qwen2.gguf{suffix}", ROOT / "tests" / "data" / f"qwen2-vocab{suffix}")
    print(f"{out}: {len(normal)} tokens, {len(control)} control, {len(data['merges'])} merges, {out.stat().st_size} bytes")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
