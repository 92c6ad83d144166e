"""Hugging Face references for the GPU check (bench/gpu-check.sh), run on the GPU machine.

Builds a random-weight Llama with transformers, saves it as safetensors, and measures the
references airllm is compared with: transformers' logits (bf16 and f32) on the GPU, its resident
decode and prefill speed, and accelerate's CPU offload. Every subcommand prints one JSON object.

  python3 bench/gpu_reference.py make-model DIR --layers 28 --hidden 3072 --inter 8192 --heads 24 --kv 8 --vocab 32000
  python3 bench/gpu_reference.py logits DIR --ids 1,2,3 --out PREFIX      (PREFIX.bf16.f32, PREFIX.f32.f32)
  python3 bench/gpu_reference.py bench-transformers DIR --prompt-tokens 512 --decode-tokens 32
  python3 bench/gpu_reference.py bench-offload DIR --decode-tokens 3
  python3 bench/gpu_reference.py save-tokenizer DIR tokenizer.model        (Llama-2 SentencePiece)
  python3 bench/gpu_reference.py bench-airllm DIR --decode-tokens 2        (needs the airllm wheel)
  python3 bench/gpu_reference.py compare OURS.f32 PREFIX --vocab V   (our logits against both references)
  python3 bench/gpu_reference.py expected-text llama2c_test_all.py
  python3 bench/gpu_reference.py make-sparse-split DIR --hidden 8192 --layers 80 --heads 64 --kv 8 --inter 28672 --vocab 128256
      (DIR/splitted_model.4bit/: an AirLLM 4-bit split of a Llama shape whose weights are holes)
"""
import argparse
import json
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def make_model(a):
    config = LlamaConfig(
        hidden_size=a.hidden, intermediate_size=a.inter, num_hidden_layers=a.layers,
        num_attention_heads=a.heads, num_key_value_heads=a.kv, vocab_size=a.vocab,
        max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=500000.0,
        tie_word_embeddings=False, torch_dtype="bfloat16",
    )
    torch.manual_seed(0)
    t = time.time()
    with torch.device("cuda"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    # transformers' own init scale (std 0.02) with random norm weights: a deep random network
    # amplifies small differences layer after layer, so a wider init would make every
    # implementation disagree with every other one, not only ours.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0, 0.02)
    model.save_pretrained(a.dir, safe_serialization=True)
    params = sum(p.numel() for p in model.parameters())
    print(json.dumps({"params": params, "bytes": params * 2, "seconds": round(time.time() - t, 1)}))


def logits(a):
    ids = torch.tensor([[int(x) for x in a.ids.split(",")]], device="cuda")
    out = {}
    for dtype, tag in ((torch.bfloat16, "bf16"), (torch.float32, "f32")):
        model = LlamaForCausalLM.from_pretrained(a.dir, dtype=dtype, attn_implementation="eager").cuda().eval()
        with torch.no_grad():
            l = model(ids).logits[0].float().cpu().numpy()
        l.tofile(f"{a.out}.{tag}.f32")
        out[tag] = {"shape": list(l.shape)}
        del model
        torch.cuda.empty_cache()
    print(json.dumps(out))


def _decode_loop(model, prompt, steps, device, warmup=3):
    with torch.no_grad():
        out = model(prompt, use_cache=True)
        past = out.past_key_values
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        for _ in range(warmup):
            out = model(nxt.to(device), past_key_values=past, use_cache=True)
            past = out.past_key_values
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        out = model(prompt, use_cache=True)
        past = out.past_key_values
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        torch.cuda.synchronize()
        t = time.time()
        for _ in range(steps):
            out = model(nxt.to(device), past_key_values=past, use_cache=True)
            past = out.past_key_values
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        torch.cuda.synchronize()
        return (time.time() - t) / steps


def bench_transformers(a):
    model = LlamaForCausalLM.from_pretrained(a.dir, dtype=torch.bfloat16).cuda().eval()
    V = model.config.vocab_size
    g = torch.Generator().manual_seed(1)
    prompt = torch.randint(3, V, (1, a.prompt_tokens), generator=g).cuda()
    with torch.no_grad():
        for _ in range(2):  # warm-up at the timed shape (kernel selection, allocator)
            model(prompt, use_cache=True)
        times = []
        for _ in range(3):
            torch.cuda.synchronize()
            t = time.time()
            model(prompt, use_cache=True)
            torch.cuda.synchronize()
            times.append(time.time() - t)
        prefill = sorted(times)[1]
    per_tok = _decode_loop(model, prompt[:, :8], a.decode_tokens, "cuda")
    print(json.dumps({
        "prefill_tokens_per_s": round(a.prompt_tokens / prefill, 1),
        "decode_ms_per_token": round(per_tok * 1000, 2),
        "decode_tokens_per_s": round(1 / per_tok, 2),
    }))


def bench_offload(a):
    from accelerate import cpu_offload
    model = LlamaForCausalLM.from_pretrained(a.dir, dtype=torch.bfloat16).eval()
    cpu_offload(model, execution_device=torch.device("cuda"))
    prompt = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]], device="cuda")
    per_tok = _decode_loop(model, prompt, a.decode_tokens, "cuda", warmup=1)
    print(json.dumps({"decode_ms_per_token": round(per_tok * 1000, 1), "decode_tokens_per_s": round(1 / per_tok, 3)}))


def bench_airllm(a):
    """AirLLM itself (PyPI `airllm`, public API only) on the same model: its default layer-by-layer
    streaming from its split shards, prefetching on. Per-token time = (generate of 1+n tokens −
    generate of 1 token) / n, so the one-time split and the prompt pass are left out."""
    import tempfile

    from airllm import AutoModel as AirAutoModel

    split_dir = tempfile.mkdtemp(prefix="airllm-split-")
    model = AirAutoModel.from_pretrained(a.dir, layer_shards_saving_path=split_dir, max_seq_len=64)
    ids = torch.tensor([[1, 450, 4996, 17354, 1701, 432, 17204, 975]], device="cuda")

    def timed(new_tokens):
        torch.cuda.synchronize()
        t = time.time()
        model.generate(ids, max_new_tokens=new_tokens, use_cache=True, do_sample=False, return_dict_in_generate=True)
        torch.cuda.synchronize()
        return time.time() - t

    timed(1)  # warm-up: splitting and first loads
    one = timed(1)
    more = timed(1 + a.decode_tokens)
    per_tok = (more - one) / a.decode_tokens
    print(json.dumps({"decode_ms_per_token": round(per_tok * 1000, 1), "decode_tokens_per_s": round(1 / per_tok, 3),
                      "first_token_ms": round(one * 1000, 1)}))


def save_tokenizer(a):
    """The Llama-2 SentencePiece model (../shared, carried) as the random model's tokenizer, so
    tools that insist on one (AirLLM) can load the folder."""
    from transformers import LlamaTokenizerFast
    tok = LlamaTokenizerFast(vocab_file=a.model_file, legacy=False)
    tok.save_pretrained(a.dir)
    print(json.dumps({"vocab": tok.vocab_size}))


def compare(a):
    import numpy as np
    ours = np.fromfile(a.ours, dtype=np.float32)
    out = {}
    for tag in ("bf16", "f32"):
        ref = np.fromfile(f"{a.ref}.{tag}.f32", dtype=np.float32)
        if ref.size != ours.size and not a.rows:
            out[tag] = {"error": f"shape {ours.shape} vs {ref.shape}"}
            continue
        o, r = ours.reshape(-1, a.vocab), ref.reshape(-1, a.vocab)[: a.rows or None]
        out[tag] = {
            "max_abs": float(np.abs(o - r).max()),
            "rel_l2": float(np.linalg.norm(o - r) / np.linalg.norm(r)),
            "argmax_agree": float((o.argmax(-1) == r.argmax(-1)).mean()),
            "finite": bool(np.isfinite(o).all()),
        }
    print(json.dumps(out))


def expected_text(a):
    """llama2.c's test_all.py expected_stdout (a bytes literal), printed raw."""
    import ast
    import re
    import sys
    src = open(a.py).read()
    m = re.search(r"^expected_stdout = (b'.*')$", src, re.M)
    sys.stdout.buffer.write(ast.literal_eval(m.group(1)))


def make_sparse_split(a):
    """airllm's 4-bit split layout (src/split/split-model.ts, safetensors-writer.ts) with every
    tensor a hole: a header per plan entry, the file extended with truncate, a .done marker.
    2-D weights are NF4 (U8 bytes; dtype and shape in __metadata__), norms BF16. Zeros decode to
    zeros, so a pass is well defined: a shape-only model for memory and bandwidth runs."""
    import os
    h, i, hd = a.hidden, a.inter, a.hidden // a.heads
    q, kv = a.heads * hd, a.kv * hd
    nf4 = lambda r, c: (r * c) // 64 * 36
    entries = [("model.embed_tokens", [("model.embed_tokens.weight", [a.vocab, h])])]
    for l in range(a.layers):
        p = f"model.layers.{l}"
        # The order the architecture lists them (src/model/blocks/attention.ts, mlp.ts).
        entries.append((p, [(f"{p}.input_layernorm.weight", [h]), (f"{p}.self_attn.q_proj.weight", [q, h]),
                            (f"{p}.self_attn.k_proj.weight", [kv, h]), (f"{p}.self_attn.v_proj.weight", [kv, h]),
                            (f"{p}.self_attn.o_proj.weight", [h, q]), (f"{p}.post_attention_layernorm.weight", [h]),
                            (f"{p}.mlp.gate_proj.weight", [i, h]), (f"{p}.mlp.up_proj.weight", [i, h]),
                            (f"{p}.mlp.down_proj.weight", [h, i])]))
    entries += [("model.norm", [("model.norm.weight", [h])]), ("lm_head", [("lm_head.weight", [a.vocab, h])])]
    out = os.path.join(a.dir, "splitted_model.4bit")
    os.makedirs(out, exist_ok=True)
    total = 0
    for name, tensors in entries:
        meta, header, off = {"format": "pt"}, {}, 0
        for t, shape in tensors:
            if len(shape) == 2:
                meta[f"airllm.dtype.{t}"] = "nf4"
                meta[f"airllm.shape.{t}"] = json.dumps(shape, separators=(",", ":"))
                n = nf4(*shape)
                header[t] = {"dtype": "U8", "shape": [n], "data_offsets": [off, off + n]}
            else:
                n = shape[0] * 2
                header[t] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + n]}
            off += n
        text = json.dumps({"__metadata__": meta, **header}, separators=(",", ":"))
        text += " " * ((-len(text)) % 8)
        path = os.path.join(out, f"{name}.safetensors")
        with open(path, "wb") as f:
            f.write(len(text).to_bytes(8, "little"))
            f.write(text.encode())
            f.truncate(8 + len(text) + off)
        open(path + ".done", "w").close()
        total += off
    config = dict(architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=h, intermediate_size=i,
                  num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv,
                  vocab_size=a.vocab, max_position_embeddings=8192, rms_norm_eps=1e-5, rope_theta=500000.0,
                  tie_word_embeddings=False, torch_dtype="bfloat16", bos_token_id=1, eos_token_id=2)
    json.dump(config, open(os.path.join(out, "config.json"), "w"))
    print(json.dumps({"dir": out, "weight_bytes": total, "entries": len(entries)}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make-model")
    m.add_argument("dir")
    for k, v in (("layers", 28), ("hidden", 3072), ("inter", 8192), ("heads", 24), ("kv", 8), ("vocab", 32000)):
        m.add_argument(f"--{k}", type=int, default=v)
    l = sub.add_parser("logits")
    l.add_argument("dir")
    l.add_argument("--ids", required=True)
    l.add_argument("--out", required=True)
    b = sub.add_parser("bench-transformers")
    b.add_argument("dir")
    b.add_argument("--prompt-tokens", type=int, default=512)
    b.add_argument("--decode-tokens", type=int, default=32)
    o = sub.add_parser("bench-offload")
    o.add_argument("dir")
    o.add_argument("--decode-tokens", type=int, default=3)
    ba = sub.add_parser("bench-airllm")
    ba.add_argument("dir")
    ba.add_argument("--decode-tokens", type=int, default=2)
    st = sub.add_parser("save-tokenizer")
    st.add_argument("dir")
    st.add_argument("model_file")
    c = sub.add_parser("compare")
    c.add_argument("ours")
    c.add_argument("ref")
    c.add_argument("--vocab", type=int, required=True)
    c.add_argument("--rows", type=int, default=0, help="compare with the first ROWS positions of the reference")
    e = sub.add_parser("expected-text")
    e.add_argument("py")
    ss = sub.add_parser("make-sparse-split")
    ss.add_argument("dir")
    for k, v in (("layers", 80), ("hidden", 8192), ("inter", 28672), ("heads", 64), ("kv", 8), ("vocab", 128256)):
        ss.add_argument(f"--{k}", type=int, default=v)
    a = p.parse_args()
    {"make-model": make_model, "logits": logits, "bench-transformers": bench_transformers, "bench-offload": bench_offload,
     "compare": compare, "expected-text": expected_text, "bench-airllm": bench_airllm,
     "save-tokenizer": save_tokenizer, "make-sparse-split": make_sparse_split}[a.cmd](a)


if __name__ == "__main__":
    main()
