#!/usr/bin/env python3
"""Writes a ~1 GiB BF16 Llama-style repo for scripts/bench.sh: the real tensor names and shapes
of a Llama-family model (TinyLlama-like widths, SmolLM2's vocabulary), random weights, and the
real SmolLM2 tokenizer files from the shared corpus.

Usage: gen_model.py CORPUS_REPO_DIR OUT_REPO_DIR [LAYERS]
"""
import json
import os
import shutil
import struct
import sys

import numpy as np

HIDDEN, INTER, HEADS, KV_HEADS = 2048, 5632, 32, 4
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "generation_config.json"]


def tensors(vocab, layers):
    head_dim = HIDDEN // HEADS
    out = [("model.embed_tokens.weight", [vocab, HIDDEN])]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", [HIDDEN]),
            (p + "self_attn.q_proj.weight", [HIDDEN, HIDDEN]),
            (p + "self_attn.k_proj.weight", [KV_HEADS * head_dim, HIDDEN]),
            (p + "self_attn.v_proj.weight", [KV_HEADS * head_dim, HIDDEN]),
            (p + "self_attn.o_proj.weight", [HIDDEN, HIDDEN]),
            (p + "post_attention_layernorm.weight", [HIDDEN]),
            (p + "mlp.gate_proj.weight", [INTER, HIDDEN]),
            (p + "mlp.up_proj.weight", [INTER, HIDDEN]),
            (p + "mlp.down_proj.weight", [HIDDEN, INTER]),
        ]
    out.append(("model.norm.weight", [HIDDEN]))
    return out


def random_bf16(rng, n):
    """Plausible weights as raw bf16 bits: random sign and mantissa, magnitudes 2^-12..2^-5."""
    r = rng.integers(0, 1 << 16, n, dtype=np.uint16)
    exponent = (115 + (r >> 7) % 8).astype(np.uint16)
    return (r & 0x807F) | (exponent << 7)


def main():
    corpus, out = sys.argv[1], sys.argv[2]
    layers = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    cfg = json.load(open(os.path.join(corpus, "config.json")))
    cfg.update(hidden_size=HIDDEN, intermediate_size=INTER, num_attention_heads=HEADS,
               num_key_value_heads=KV_HEADS, num_hidden_layers=layers, tie_word_embeddings=True)
    cfg.pop("transformers.js_config", None)
    os.makedirs(out, exist_ok=True)
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
    for name in TOKENIZER_FILES:
        if os.path.exists(os.path.join(corpus, name)):
            shutil.copy(os.path.join(corpus, name), os.path.join(out, name))
    specs = tensors(cfg["vocab_size"], layers)
    header, offset = {}, 0
    for name, shape in specs:
        size = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    header["__metadata__"] = {"format": "pt"}
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    rng = np.random.default_rng(1234)
    tmp = os.path.join(out, "model.safetensors.partial")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        for name, shape in specs:
            n = int(np.prod(shape))
            if name.endswith("norm.weight"):
                f.write(np.full(n, 0x3F80, dtype=np.uint16).tobytes())  # 1.0, as trained norms start
            else:
                for start in range(0, n, 1 << 24):
                    f.write(random_bf16(rng, min(1 << 24, n - start)).tobytes())
    os.replace(tmp, os.path.join(out, "model.safetensors"))
    print(f"{out}: {offset / 2**30:.2f} GiB of BF16 weights, {layers} layers")


if __name__ == "__main__":
    main()
