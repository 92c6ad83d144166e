"""llama.cpp's own CPU decode speed on a GGUF file (llama-cpp-python), for bench/gguf-decode.ts.

    python3 bench/llama_cpp_decode.py FILE.gguf TOKENS THREADS [PREFILL]   → one JSON line

With PREFILL, also the time of one prefill of that many tokens (the ids of
bench/gguf-bench-prompt.ts), in batches of 512 as llama.cpp's defaults.
"""
import json
import sys
import time

import llama_cpp
import numpy as np


def prompt_ids(n):
    return [1 if i == 0 else 3 + (i * 37) % 509 for i in range(n)]


def main(path, tokens, threads, prefill=0):
    llm = llama_cpp.Llama(model_path=path, n_ctx=max(256, prefill + tokens + 8), n_batch=512, n_ubatch=512, n_threads=threads, n_threads_batch=threads, verbose=False, logits_all=False)
    llm.eval([1, 403, 407, 261, 378])  # prompt, and pages the weights in
    ids = [432]
    t = time.time()
    c = time.process_time()
    vocab = llm.n_vocab()
    for i in range(tokens):
        llm.eval(ids)
        # Greedy on the last position's logits, read from the context itself: with logits_all off,
        # llama-cpp-python 0.3.x no longer copies them into llm.scores (which stays zero).
        last = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(vocab,))
        ids = [int(last.argmax())]
    per = (time.time() - t) / tokens
    cpu = (time.process_time() - c) / tokens
    # CPU seconds (all threads) beside wall time: on a shared machine the wall time carries
    # other processes' load, the CPU time mostly does not.
    out = {"ms_per_token": round(per * 1000, 1), "cpu_ms_per_token": round(cpu * 1000, 1), "tokens_per_s": round(1 / per, 2), "threads": threads}
    # The prefill after the decode steps, on a fresh context: decode is measured at a short
    # context, as before this option existed.
    if prefill:
        llm.reset()
        t = time.time()
        c = time.process_time()
        llm.eval(prompt_ids(prefill))
        prefill_ms = round((time.time() - t) * 1000, 1)
        prefill_cpu_ms = round((time.process_time() - c) * 1000, 1)
        out.update(prefill_ms=prefill_ms, prefill_cpu_ms=prefill_cpu_ms, prefill_tokens=prefill)
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 0)
