"""The forward engine against transformers' own implementations, float32, tiny demo checkpoints.

* text-only logits vs ``Qwen2ForCausalLM`` on the ``language_model.*`` weights;
* image embeddings and image-prompt logits vs the native ``InternVLForConditionalGeneration``
  (weights converted: qkv split, names mapped), which implements the ``v2`` pixel shuffle;
* ``v1`` by its exact relation to ``v2``: the same tokens, the 16x16 grid transposed.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import images
import pytest
import torch
from PIL import Image
from transformers import (InternVLConfig, InternVLForConditionalGeneration, InternVLVisionConfig, Qwen2Config,
                          Qwen2ForCausalLM)

from r1v_quant.engine import Engine, PromptBuilder
from r1v_quant.read import Checkpoint, open_checkpoint

TOL = 1e-4  # max abs logit difference allowed (measured: see the asserts' messages)
ANSWER = "<think>\nThe picture shows a red square on a blue sky.\n</think>\n\nA red square."


def qwen2_config(ckpt: Checkpoint) -> Qwen2Config:
    c = ckpt.config.llm
    return Qwen2Config(vocab_size=c.vocab_size, hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
                       num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads,
                       num_key_value_heads=c.num_kv_heads, rms_norm_eps=c.rms_norm_eps, rope_theta=c.rope_theta,
                       max_position_embeddings=c.max_position_embeddings, tie_word_embeddings=False)


def make_image(width: int = 700, height: int = 420) -> Image.Image:
    return images.make_image(width, height, box=(100, 80, 300, 280), disc=(420, 60, 640, 300))


def engine_logits(ckpt: Checkpoint, prepared: list) -> list[torch.Tensor]:
    out: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(prepared))}
    Engine(ckpt).run(prepared, lambda i, pos, logits: out[i].append(logits))
    return [torch.cat(out[i]) for i in range(len(prepared))]


def test_text_logits_match_transformers_qwen2(tiny_ckpt: Path) -> None:
    ckpt = open_checkpoint(tiny_ckpt)
    builder = PromptBuilder(ckpt.dir, ckpt.config)
    s = builder.prepare("t", [{"role": "user", "content": "What is 17 * 23? Think it through."},
                              {"role": "assistant", "content": "<think>\n17*23 = 391.\n</think>\n\n391"}], [])
    assert 0 < int(s.answer_mask.sum()) < len(s.input_ids) and not s.image_mask.any()
    model = Qwen2ForCausalLM(qwen2_config(ckpt)).float().eval()
    state = {n.removeprefix("language_model."): ckpt.read_tensor(n).float()
             for n in ckpt.tensor_names if n.startswith("language_model.")}
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        ref = model(s.input_ids[None]).logits[0]
    ours = engine_logits(ckpt, [s])[0]
    diff = (ours - ref).abs().max().item()
    assert diff <= TOL, f"max abs logit difference {diff}"


def to_transformers_internvl(ckpt: Checkpoint, image_token_id: int) -> InternVLForConditionalGeneration:
    cfg = ckpt.config
    v = cfg.vision
    vision = InternVLVisionConfig(
        hidden_size=v.hidden_size, num_hidden_layers=v.num_layers, num_attention_heads=v.num_heads,
        intermediate_size=v.intermediate_size, attention_bias=v.qkv_bias, use_qk_norm=v.qk_normalization,
        norm_type=v.norm_type, layer_norm_eps=v.layer_norm_eps, image_size=[cfg.image_size] * 2,
        patch_size=[v.patch_size] * 2, hidden_act="gelu")
    config = InternVLConfig(vision_config=vision, text_config=qwen2_config(ckpt), image_token_id=image_token_id,
                            downsample_ratio=cfg.downsample_ratio, projector_hidden_act="gelu",
                            vision_feature_layer=-1, vision_feature_select_strategy="default",
                            tie_word_embeddings=False)
    model = InternVLForConditionalGeneration(config).float().eval()
    names = {
        "embeddings.class_embedding": "embeddings.cls_token",
        "embeddings.position_embedding": "embeddings.position_embeddings",
        "embeddings.patch_embedding.weight": "embeddings.patch_embeddings.projection.weight",
        "embeddings.patch_embedding.bias": "embeddings.patch_embeddings.projection.bias",
    }
    layer_names = {"attn.proj": "attention.projection_layer", "attn.q_norm": "attention.q_norm",
                   "attn.k_norm": "attention.k_norm", "norm1": "layernorm_before", "norm2": "layernorm_after",
                   "ls1": "lambda_1", "ls2": "lambda_2", "mlp.fc1": "mlp.fc1", "mlp.fc2": "mlp.fc2"}
    proj_names = {"mlp1.0": "layer_norm", "mlp1.1": "linear_1", "mlp1.3": "linear_2"}
    state: dict[str, torch.Tensor] = {}
    for n in ckpt.tensor_names:
        t = ckpt.read_tensor(n).float()
        if n.startswith("language_model.model."):
            state["model.language_model." + n.removeprefix("language_model.model.")] = t
        elif n == "language_model.lm_head.weight":
            state["lm_head.weight"] = t
        elif n.startswith("mlp1."):
            idx, kind = n.rsplit(".", 1)
            state[f"model.multi_modal_projector.{proj_names[idx]}.{kind}"] = t
        elif n.startswith("vision_model.embeddings."):
            state["model.vision_tower." + names[n.removeprefix("vision_model.")]] = t
        else:
            rest = n.removeprefix("vision_model.encoder.layers.")
            layer, sub = rest.split(".", 1)
            p = f"model.vision_tower.encoder.layer.{layer}."
            if sub.startswith("attn.qkv."):
                for part, chunk in zip("qkv", t.chunk(3)):
                    state[p + f"attention.{part}_proj." + sub.rsplit(".", 1)[1]] = chunk
            else:
                base, _, kind = sub.rpartition(".") if sub not in ("ls1", "ls2") else (sub, "", "")
                state[p + layer_names[base] + (f".{kind}" if kind else "")] = t
    model.load_state_dict(state, strict=True)
    return model


@pytest.mark.parametrize("fixture", ["tiny_ckpt", "tiny_rms_ckpt"])
def test_image_embeddings_and_logits_match_transformers_internvl(fixture: str, request: pytest.FixtureRequest,
                                                                 tmp_path: Path) -> None:
    ckpt = open_checkpoint(request.getfixturevalue(fixture))
    image_path = tmp_path / "img.png"
    make_image().save(image_path)
    builder = PromptBuilder(ckpt.dir, ckpt.config, max_tiles=4)
    s = builder.prepare("img", [{"role": "user", "content": "<image>\nWhat is in the picture?"},
                                {"role": "assistant", "content": ANSWER}], [image_path])
    assert s.pixels is not None and s.pixels.shape[0] == 3  # 2x1 grid + thumbnail
    model = to_transformers_internvl(ckpt, builder.context_id)

    ours_img = Engine(ckpt).encode_images(s.pixels)
    with torch.no_grad():
        feats = model.model.get_image_features(pixel_values=s.pixels, vision_feature_layer=-1,
                                               vision_feature_select_strategy="default")
    ref_img = getattr(feats, "pooler_output", feats)
    ref_img = torch.cat(list(ref_img)) if isinstance(ref_img, (list, tuple)) else ref_img
    ref_img = ref_img.reshape(ours_img.shape)
    emb_diff = (ours_img - ref_img).abs().max().item()
    assert emb_diff <= TOL, f"image embedding max abs difference {emb_diff}"

    with torch.no_grad():
        ref = model(input_ids=s.input_ids[None], pixel_values=s.pixels).logits[0]
    ours = engine_logits(ckpt, [s])[0]
    diff = (ours - ref).abs().max().item()
    assert diff <= TOL, f"image-prompt max abs logit difference {diff}"


def test_v1_pixel_shuffle_is_v2_with_the_grid_transposed(tiny_ckpt: Path) -> None:
    ckpt = open_checkpoint(tiny_ckpt)
    pixels = PromptBuilder(ckpt.dir, ckpt.config, max_tiles=1).prepare(
        "x", [{"role": "user", "content": "<image>\nhi"}], [_save(make_image(448, 448))]).pixels
    v2 = Engine(ckpt).encode_images(pixels)
    ckpt.config = dataclasses.replace(ckpt.config, ps_version="v1")
    v1 = Engine(ckpt).encode_images(pixels)
    side = int(v2.shape[1] ** 0.5)
    grid = v2.reshape(v2.shape[0], side, side, -1).transpose(1, 2).reshape(v2.shape)
    assert torch.equal(v1, grid)
    assert not torch.allclose(v1, v2)


def _save(img: Image.Image) -> Path:
    import tempfile

    path = Path(tempfile.mkdtemp()) / "sq.png"
    img.save(path)
    return path
