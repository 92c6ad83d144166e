"""Which 8-bit block format meets a next-token KL of 1e-3 on stories260K, measured with
bitsandbytes and transformers alone (no airllm code): each 2-D weight is quantized and
dequantized by bitsandbytes' quantize_blockwise / dequantize_blockwise, and the model's
next-token distributions over llama2.c's 200-token greedy sequence are compared with the F32
model's (mean KL(F32 || quantized)). The numbers behind the 8bit format in
zig-src/cpu/quant_bnb.zig; recorded in bench/RESULTS.md.

    pip install bitsandbytes==0.50.2 torch transformers && python3 bench/kl_8bit_formats.py
"""
import json
import os

import bitsandbytes.functional as F
import numpy as np
import torch
from transformers import LlamaForCausalLM

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../shared")
MODEL = os.path.join(SHARED, "models/stories260K-hf")
# Same values as zig-src/cpu/quant_bnb.zig lin_code: (q - 128) / 127, f32 division.
LINEAR_MAP = torch.from_numpy((np.arange(256, dtype=np.float32) - np.float32(128)) / np.float32(127))


def main():
    ref = json.load(open(os.path.join(SHARED, "refs/stories260K/ref_bos_200.json")))
    ids = torch.tensor([([1] + ref["sequence_after_bos_prompt_then_greedy"])[:200]])
    with torch.no_grad():
        base = torch.log_softmax(LlamaForCausalLM.from_pretrained(MODEL, dtype=torch.float32)(ids).logits[0].double(), -1)

    def kl(blocksize, code):
        m = LlamaForCausalLM.from_pretrained(MODEL, dtype=torch.float32).eval()
        with torch.no_grad():
            for p in m.parameters():
                if p.dim() == 2:
                    q, st = F.quantize_blockwise(p.detach().flatten().contiguous(), code=code, blocksize=blocksize)
                    p.copy_(F.dequantize_blockwise(q, st).reshape(p.shape))
            lp = torch.log_softmax(m(ids).logits[0].double(), -1)
        return float((base.exp() * (base - lp)).sum(-1).mean())

    out = {f"dynamic_map_block_{b}": kl(b, None) for b in (2048, 256, 64)}
    out.update({f"linear_map_block_{b}": kl(b, LINEAR_MAP) for b in (2048, 256, 64)})
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
