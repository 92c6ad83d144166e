"""GGUF forms of the ~1B random benchmark Llama (bench/random-model.ts LLAMA_1B) for bench/gguf-decode.ts.

    python3 bench/make_gguf_bench_models.py MODEL_DIR OUT_DIR

Writes OUT_DIR/llama1b-q8_0.gguf, llama1b-q4_k.gguf and llama1b-q4_0.gguf (files already there
are kept): the safetensors weights are
written as an F32 GGUF the way llama.cpp's converter lays them out (q/k rows permuted to
interleaved pairs, stories260K's 512-token vocabulary), then quantized by
llama.cpp itself (llama-cpp-python's llama_model_quantize: Q8_0, Q4_K_M and Q4_0). Needs torch,
safetensors, gguf and llama-cpp-python; the benchmark files are not committed.
"""
import json
import os
import sys

from gguf import GGUFWriter
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "../test/fixtures"))
from gen_gguf_models import GGUF_NAMES as NAMES, add_stories_vocab, permute  # noqa: E402


def main(model_dir, out_dir):
    import llama_cpp
    os.makedirs(out_dir, exist_ok=True)
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    sd = load_file(os.path.join(model_dir, "model.safetensors"))
    f32 = os.path.join(out_dir, "llama1b-f32.gguf")
    w = GGUFWriter(f32, "llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_head_count(cfg["num_attention_heads"])
    w.add_head_count_kv(cfg["num_key_value_heads"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_rope_freq_base(cfg["rope_theta"])
    w.add_rope_dimension_count(cfg["hidden_size"] // cfg["num_attention_heads"])
    w.add_file_type(0)
    add_stories_vocab(w)
    arr = lambda k: sd[k].float().numpy()
    w.add_tensor("token_embd.weight", arr("model.embed_tokens.weight"))
    for i in range(cfg["num_hidden_layers"]):
        for hf, gg in NAMES.items():
            t = arr(f"model.layers.{i}.{hf}.weight")
            if hf == "self_attn.q_proj":
                t = permute(t, cfg["num_attention_heads"])
            if hf == "self_attn.k_proj":
                t = permute(t, cfg["num_key_value_heads"])
            w.add_tensor(f"blk.{i}.{gg}.weight", t)
    w.add_tensor("output_norm.weight", arr("model.norm.weight"))
    w.add_tensor("output.weight", arr("lm_head.weight"))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    for name, ftype in (("q8_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0), ("q4_k", llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M), ("q4_0", llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0)):
        if os.path.exists(os.path.join(out_dir, f"llama1b-{name}.gguf")):
            continue
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = ftype
        params.nthread = os.cpu_count()
        dst = os.path.join(out_dir, f"llama1b-{name}.gguf")
        assert llama_cpp.llama_model_quantize(f32.encode(), dst.encode(), params) == 0
        print(json.dumps({"file": dst, "bytes": os.path.getsize(dst)}))
    os.remove(f32)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
