"""Prefill and decode time of transformers (torch, CPU) on a model folder: the peer for
airllm's CPU figures (bench/RESULTS.md). Same prompt length, thread count and dtype as
`airllm bench MODEL --device cpu --prompt-tokens P --decode-tokens D --threads N`.
    python bench/transformers_prefill.py MODEL_DIR [--prompt-tokens 512] [--decode-tokens 8] [--threads 2] [--reps 3]
Prints one JSON object: best prefill seconds over reps, decode seconds per token."""
import argparse, json, time

import torch
from transformers import AutoModelForCausalLM

p = argparse.ArgumentParser()
p.add_argument("model")
p.add_argument("--prompt-tokens", type=int, default=512)
p.add_argument("--decode-tokens", type=int, default=8)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--reps", type=int, default=3)
a = p.parse_args()
torch.set_num_threads(a.threads)
model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.bfloat16)
model.eval()
ids = torch.randint(3, model.config.vocab_size, (1, a.prompt_tokens))
prefill, decode = [], []
with torch.inference_mode():
    for _ in range(a.reps):
        t0 = time.perf_counter()
        out = model(ids, use_cache=True)
        prefill.append(time.perf_counter() - t0)
        past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        t0 = time.perf_counter()
        for _ in range(a.decode_tokens):
            out = model(nxt, past_key_values=past, use_cache=True)
            past, nxt = out.past_key_values, out.logits[:, -1:].argmax(-1)
        decode.append((time.perf_counter() - t0) / a.decode_tokens)
print(json.dumps({"torch": torch.__version__, "threads": a.threads, "prompt_tokens": a.prompt_tokens,
                  "prefill_s": min(prefill), "prefill_tok_s": a.prompt_tokens / min(prefill), "decode_s_per_token": min(decode)}))
