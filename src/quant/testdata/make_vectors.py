"""Makes the reference vectors the quant tests compare against (run from the repo root):

    source /root/.cache/ggufs-reference/env.sh
    PYTHONPATH=$LLAMA_CPP/gguf-py python src/quant/testdata/make_vectors.py

It runs the same numpy/torch operations as the reference converter: torch `.to(float32)` for
non-f16/f32 sources, torch arithmetic for `x + 1`, then `gguf.quants.quantize`.
"""
import hashlib, json, os
import numpy as np
import torch
from gguf.quants import quantize
from gguf.constants import GGMLQuantizationType as Q

OUT = os.path.dirname(os.path.abspath(__file__))
sha = lambda a: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def tricky_f32():
    """1024 f32 values (32 blocks of 32) with the cases that break conversions."""
    rng = np.random.default_rng(20260303)
    blocks = []
    u = lambda bits: np.array(bits, dtype=np.uint32).view(np.float32)
    f = lambda vals: np.array(vals, dtype=np.float32)
    # ties and neighbours for f16 rounding, subnormals, signed zeros, overflow, NaN payloads
    specials = f([0.0, -0.0, np.inf, -np.inf, 65504, 65519.99, 65520, -65520, 2**-25, 3 * 2**-26,
                  2**-24, 2**-14, 2**-14 - 2**-25, 1 + 3 * 2**-11, 1 + 2**-11, 1 + 2**-12, 1e-40, -1e-45,
                  3.4028235e38, -3.4028235e38, 1.0, -1.0, 0.5, 1.5, 2.5, -2.5])
    specials = np.concatenate([specials, u([0x7f800001, 0xff800001, 0x7fc00000, 0x7fa00000, 0x7f802000,
                                            0xffc12345])])
    blocks.append(specials)  # 32 values with NaN: a poisoned Q8_0 block
    # f16 / bf16 rounding midpoints (exact halfway, halfway +- 1 ulp)
    base = rng.integers(0x3000_0000, 0x4700_0000, 96, dtype=np.uint32)
    blocks.append(u((base & 0xffffe000) | 0x1000).reshape(3, 32))
    blocks.append(u(((base & 0xffffe000) | 0x1000) + 1).reshape(3, 32))
    blocks.append(u((base & 0xffff0000) | 0x8000).reshape(3, 32))
    blocks.append(f(np.zeros(32)))                       # all-zero block
    blocks.append(f(np.where(np.arange(32) == 5, 1e30, rng.normal(0, 1, 32))))  # one huge value
    blocks.append(f(np.where(np.arange(32) == 0, 127.0, np.arange(32) - 16 + 0.5)))  # x*id ties
    blocks.append(f(np.where(np.arange(32) == 0, -127.0, -(np.arange(32) - 16 + 0.5))))
    blocks.append(f(rng.normal(0, 1e-38, 32)))           # tiny amax: subnormal d, id = inf
    blocks.append(f(rng.normal(0, 3e-37, 32)))           # d subnormal, 1/d finite
    blocks.append(f(np.where(np.arange(32) == 9, np.inf, rng.normal(0, 1, 32))))
    blocks.append(f(np.where(np.arange(32) == 9, -np.inf, rng.normal(0, 1, 32))))
    blocks.append(f(rng.normal(0, 60000, 32)))           # near the f16 range end
    blocks.append(f(rng.normal(0, 2**-20, 32)))          # f16 subnormal range
    rest = 1024 - sum(np.asarray(b).size for b in blocks)
    scales = np.repeat(10.0 ** rng.uniform(-8, 4, rest // 32), 32)
    blocks.append(f(rng.normal(0, 1, rest) * scales))
    x = np.concatenate([np.asarray(b, dtype=np.float32).ravel() for b in blocks])
    assert x.size == 1024
    return x


x = tricky_f32()
rows = x.reshape(8, 128)
x.tofile(f"{OUT}/tricky_f32.bin")
quantize(rows, Q.F16).tofile(f"{OUT}/tricky_f16.bin")
quantize(rows, Q.BF16).tofile(f"{OUT}/tricky_bf16.bin")
quantize(rows, Q.Q8_0).tofile(f"{OUT}/tricky_q8_0.bin")

# f64 sources: torch .to(float32) rounds to nearest even
rng = np.random.default_rng(7)
x64 = rng.normal(0, 1, 256) * 10.0 ** rng.uniform(-50, 50, 256)
x64[:6] = [np.nan, np.inf, -0.0, 1 + 2**-24, 1 + 3 * 2**-24, 65519.999]
x64.astype(np.float64).tofile(f"{OUT}/f64_in.bin")

hashes = {"f64_to_f32": sha(torch.from_numpy(x64).to(torch.float32).numpy())}

all16 = np.arange(65536, dtype=np.uint32).astype(np.uint16)
bf = torch.from_numpy(all16.view(np.int16).copy()).view(torch.bfloat16)
bf32 = bf.to(torch.float32)
for name, data in [("bf16", bf32), ("bf16_addone", bf32 + 1)]:
    a = data.numpy().reshape(64, 1024)
    for q in (Q.F32, Q.F16, Q.BF16, Q.Q8_0):
        hashes[f"{name}_to_{q.name}"] = sha(quantize(a, q))
h = torch.from_numpy(all16.view(np.float16).copy())
for name, data in [("f16", h), ("f16_addone", h + 1)]:
    a = data.numpy().reshape(64, 1024)
    for q in (Q.F32, Q.F16, Q.BF16, Q.Q8_0):
        hashes[f"{name}_to_{q.name}"] = sha(quantize(a, q))

all8 = torch.arange(256, dtype=torch.int32).to(torch.uint8)
for name, dt in [("f8e4m3", torch.float8_e4m3fn), ("f8e5m2", torch.float8_e5m2)]:
    hashes[f"{name}_to_F32"] = sha(all8.view(dt).to(torch.float32).numpy())
for name, dt in [("i8", torch.int8), ("u8", torch.uint8)]:
    hashes[f"{name}_to_F32"] = sha(all8.view(dt).to(torch.float32).numpy())
hashes["bool_to_F32"] = sha(all8[:2].view(torch.bool).to(torch.float32).numpy())  # bytes 0 and 1 only
ints = torch.from_numpy(np.random.default_rng(3).integers(-2**62, 2**62, 64) >> np.arange(64))
hashes["i64_to_F32"] = sha(ints.to(torch.float32).numpy())
ints.numpy().tofile(f"{OUT}/i64_in.bin")

with open(f"{OUT}/hashes.json", "w") as fh:
    json.dump(hashes, fh, indent=1, sort_keys=True)
    fh.write("\n")
