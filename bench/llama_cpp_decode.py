"""llama.cpp's own CPU decode speed on a GGUF file (llama-cpp-python), for bench/gguf-decode.ts.

    python3 bench/llama_cpp_decode.py FILE.gguf TOKENS THREADS   → one JSON line
"""
import json
import sys
import time

import llama_cpp


def main(path, tokens, threads):
    llm = llama_cpp.Llama(model_path=path, n_ctx=256, n_threads=threads, n_threads_batch=threads, verbose=False, logits_all=False)
    llm.eval([1, 403, 407, 261, 378])  # prompt, and pages the weights in
    ids = [432]
    t = time.time()
    for i in range(tokens):
        llm.eval(ids)
        ids = [int(llm.scores[llm.n_tokens - 1].argmax())]
    per = (time.time() - t) / tokens
    print(json.dumps({"ms_per_token": round(per * 1000, 1), "tokens_per_s": round(1 / per, 2), "threads": threads}))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
