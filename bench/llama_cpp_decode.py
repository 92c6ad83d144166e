"""llama.cpp's own CPU decode speed on a GGUF file (llama-cpp-python), for bench/gguf-decode.ts.

    python3 bench/llama_cpp_decode.py FILE.gguf TOKENS THREADS   → one JSON line
"""
import json
import sys
import time

import llama_cpp
import numpy as np


def main(path, tokens, threads):
    llm = llama_cpp.Llama(model_path=path, n_ctx=256, n_threads=threads, n_threads_batch=threads, verbose=False, logits_all=False)
    llm.eval([1, 403, 407, 261, 378])  # prompt, and pages the weights in
    ids = [432]
    t = time.time()
    vocab = llm.n_vocab()
    for i in range(tokens):
        llm.eval(ids)
        # Greedy on the last position's logits, read from the context itself: with logits_all off,
        # llama-cpp-python 0.3.x no longer copies them into llm.scores (which stays zero).
        last = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(vocab,))
        ids = [int(last.argmax())]
    per = (time.time() - t) / tokens
    print(json.dumps({"ms_per_token": round(per * 1000, 1), "tokens_per_s": round(1 / per, 2), "threads": threads}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
