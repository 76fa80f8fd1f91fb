"""The shipped calibration/eval data (calib_data/) and its loader (r1v_quant.calibrate.dataset)."""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import PIL
import pytest
from PIL import Image

from r1v_quant.calibrate.dataset import Sample, data_hash, default_data_path, load_samples
from r1v_quant.errors import InputError

REPO = Path(__file__).resolve().parents[1]
IMAGE_KINDS = {"chart", "geometry", "table", "formula", "document", "scene"}
TEXT_KINDS = {"math", "science", "code"}
# Small run of the generator: 8 images per split covers every image kind once.
SMALL = dict(n_calib_images=8, n_calib_text=3, n_eval_images=8, n_eval_text=3)
SHIPPED_WITH_PILLOW = "13.0.0"  # the version that rendered calib_data/images (see calib_data/README.md)


@pytest.fixture(scope="module")
def shipped() -> dict[str, list[Sample]]:
    return {split: load_samples(default_data_path(split)) for split in ("calib", "eval")}


@pytest.fixture(scope="module")
def generator():
    # The generator lives outside the installed package, in tools/calibgen/ at the
    # repository root (run as `python -m tools.calibgen`); import it from there.
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(REPO))
        return importlib.import_module("tools.calibgen")


@pytest.fixture(scope="module")
def small_run(generator, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "a"
    generator.generate(out, **SMALL)
    return out


# --------------------------------------------------------------------------- shipped data


def test_default_data_path_finds_repository_copy():
    for split in ("calib", "eval"):
        assert default_data_path(split) == REPO / "calib_data" / f"{split}.jsonl"
    with pytest.raises(InputError, match="unknown data split"):
        default_data_path("train")


@pytest.mark.parametrize("split, n_images, n_text", [("calib", 128, 64), ("eval", 32, 16)])
def test_shipped_counts_and_kinds(shipped, split, n_images, n_text):
    samples = shipped[split]
    with_images = [s for s in samples if s.images]
    text_only = [s for s in samples if not s.images]
    assert len(with_images) >= n_images
    assert len(text_only) >= n_text
    assert {s.kind for s in with_images} == IMAGE_KINDS
    assert {s.kind for s in text_only} == TEXT_KINDS


def test_shipped_sample_shape(shipped):
    for samples in shipped.values():
        for s in samples:
            user, assistant = s.messages
            assert user["role"] == "user" and assistant["role"] == "assistant"
            assert user["content"].count("<image>") == len(s.images) <= 1
            assert user["content"].startswith("<image>\n") == bool(s.images)
            think, sep, answer = assistant["content"].partition("\n</think>\n\n")
            assert think.startswith("<think>\n") and sep and answer.strip()
            assert 120 <= len(think.split()) <= 600, s.id  # long R1-style reasoning
            assert s.id.split("-")[1] == s.kind


def test_shipped_ids_unique_and_splits_disjoint(shipped):
    calib, eval_ = shipped["calib"], shipped["eval"]
    for samples in (calib, eval_):
        assert len({s.id for s in samples}) == len(samples)
    assert not {s.id for s in calib} & {s.id for s in eval_}
    assert not {p for s in calib for p in s.images} & {p for s in eval_ for p in s.images}

    def image_digests(samples):
        return {hashlib.sha256(p.read_bytes()).hexdigest() for s in samples for p in s.images}

    def text_questions(samples):
        return {s.messages[0]["content"] for s in samples if not s.images}

    assert not image_digests(calib) & image_digests(eval_)  # held out by content, not just by name
    assert not text_questions(calib) & text_questions(eval_)


def test_shipped_folder_is_small():
    size = sum(p.stat().st_size for p in (REPO / "calib_data").rglob("*") if p.is_file())
    assert size < 12 * 2**20


# --------------------------------------------------------------------------- generator


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generator_is_deterministic(generator, small_run, tmp_path):
    generator.generate(tmp_path / "b", **SMALL)
    first, second = _tree(small_run), _tree(tmp_path / "b")
    assert first == second
    assert len([k for k in first if k.endswith(".png")]) == 16
    calib = load_samples(small_run / "calib.jsonl")
    assert len(calib) == 11 and {s.kind for s in calib if s.images} == IMAGE_KINDS


def test_shipped_files_are_the_generators_output(small_run):
    # Each sample is seeded by its id alone, so a small run must reproduce the
    # shipped samples with the same ids: catches an edited but not re-run generator.
    # The text is plain Python and must match anywhere; pixels depend on the FreeType
    # that Pillow bundles, so they are compared only under the Pillow that drew them.
    same_pillow = PIL.__version__ == SHIPPED_WITH_PILLOW
    for split in ("calib", "eval"):
        shipped = {json.loads(ln)["id"]: ln for ln in (REPO / "calib_data" / f"{split}.jsonl").read_text("utf-8").splitlines()}
        for ln in (small_run / f"{split}.jsonl").read_text("utf-8").splitlines():
            rec = json.loads(ln)
            assert shipped[rec["id"]] == ln
            for rel in rec["images"] if same_pillow else []:
                with Image.open(small_run / rel) as new, Image.open(REPO / "calib_data" / rel) as old:
                    assert new.size == old.size and new.tobytes() == old.tobytes(), rel


# --------------------------------------------------------------------------- loader


def _png(path: Path, color=(200, 30, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), color).save(path)


def _msgs(question: str = "<image>\nWhat colour is this?") -> list[dict]:
    return [{"role": "user", "content": question}, {"role": "assistant", "content": "<think>\nred\n</think>\n\nRed."}]


GOOD = json.dumps({"id": "ok", "images": ["images/a.png"], "messages": _msgs()})


def _write(tmp_path: Path, *lines: str) -> Path:
    _png(tmp_path / "images" / "a.png")
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


BAD_LINES = {
    "bad json": ('{"messages": [', "invalid JSON"),
    "not an object": ("[1, 2]", "expected a JSON object"),
    "missing messages": (json.dumps({"images": []}), "'messages'"),
    "empty messages": (json.dumps({"messages": []}), "'messages'"),
    "bad role": (json.dumps({"messages": [{"role": "robot", "content": "hi"}]}), "role"),
    "content not a string": (json.dumps({"messages": [{"role": "user", "content": ["hi"]}]}), "content"),
    "missing image": (json.dumps({"image": "images/nope.png", "messages": _msgs()}), "image 'images/nope.png' not found"),
    "corrupt image": (json.dumps({"image": "images/corrupt.png", "messages": _msgs()}), "not a readable image"),
    "truncated image": (json.dumps({"image": "images/truncated.png", "messages": _msgs()}), "not a readable image"),
    "too many placeholders": (json.dumps({"image": "images/a.png", "messages": _msgs("<image>\n<image>\nCompare.")}), "2 '<image>' placeholder(s)"),
    "placeholder without image": (json.dumps({"messages": _msgs()}), "1 '<image>' placeholder(s) in user messages but 0 image(s)"),
    "two images, no placeholder": (json.dumps({"images": ["images/a.png", "images/a.png"], "messages": _msgs("Compare.")}), "0 '<image>'"),
    "placeholder in assistant turn": (json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "<image>"}]}), "only appear in user"),
    "image and images": (json.dumps({"image": "images/a.png", "images": ["images/a.png"], "messages": _msgs()}), "not both"),
    "duplicate id": (GOOD, "duplicate id 'ok' (first on line 1)"),
}


@pytest.mark.parametrize("case", list(BAD_LINES))
def test_malformed_line_names_file_and_line(tmp_path, case):
    line, expected = BAD_LINES[case]
    path = _write(tmp_path, GOOD, "", line)  # blank line 2 is skipped, the fault is on line 3
    (tmp_path / "images" / "corrupt.png").write_bytes(b"this is not a PNG file")
    (tmp_path / "images" / "truncated.png").write_bytes((tmp_path / "images" / "a.png").read_bytes()[:40])
    with pytest.raises(InputError) as exc:
        load_samples(path)
    msg = str(exc.value)
    assert msg.startswith(f"{path}:3: "), msg
    assert expected in msg
    assert "\n" not in msg


@pytest.mark.parametrize("content", ["", "\n  \n\n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(InputError, match=r"empty\.jsonl: no samples"):
        load_samples(path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="nothere.jsonl: file not found"):
        load_samples(tmp_path / "nothere.jsonl")


def test_defaults_and_single_image_placeholder(tmp_path, monkeypatch):
    path = _write(tmp_path,
                  json.dumps({"image": "images/a.png", "messages": _msgs("What colour is this?")}),
                  json.dumps({"messages": _msgs("What is 2 + 2?"), "kind": "math"}),
                  json.dumps({"id": "x", "images": [str(tmp_path / "images" / "a.png")], "messages": _msgs()}))
    monkeypatch.chdir(tmp_path.parent)  # paths resolve against the JSONL's folder, not the cwd
    a, b, c = load_samples(path)
    assert (a.id, a.kind, b.id, b.kind, c.id, c.kind) == ("bad-1", "image", "bad-2", "math", "x", "image")
    assert a.images == (tmp_path.resolve() / "images" / "a.png",) == c.images and b.images == ()
    # one image and no placeholder: InternVL puts the image before the first question
    assert a.messages[0]["content"] == "<image>\nWhat colour is this?"
    assert a.messages[1] == _msgs()[1]


def test_data_hash_tracks_every_byte(tmp_path):
    path = _write(tmp_path, GOOD)
    h1 = data_hash(path)
    assert h1 == data_hash(path) and len(h1) == 64
    _png(tmp_path / "images" / "a.png", color=(200, 30, 31))  # one channel of the colour, one step
    h2 = data_hash(path)
    assert h2 != h1
    path.write_text(GOOD.replace('"ok"', '"ok2"') + "\n")
    assert data_hash(path) not in (h1, h2)
