// A random-weight Mixtral-shaped model (8 experts, top-2) scaled to a few GB, for the MoE streaming
// bench: stories260K's tokenizer (vocab 512), BF16.
import { llamaTensorShapes, writeRandomModel } from "./random-model.ts";

export interface RandomMoeSpec {
  readonly hidden: number;
  readonly expertIntermediate: number;
  readonly layers: number;
  readonly heads: number;
  readonly kvHeads: number;
  readonly experts: number;
  readonly topK: number;
}

/** 12 layers of 8 experts of 3 × 1024 × 3584 (22 MB in BF16 each): 2.2 GB, 96% of it experts. */
export const MIXTRAL_SMALL: RandomMoeSpec = { hidden: 1024, expertIntermediate: 3584, layers: 12, heads: 16, kvHeads: 4, experts: 8, topK: 2 };

const VOCAB = 512;

export function writeRandomMixtral(dir: string, s: RandomMoeSpec, tokenizerDir: string): number {
  // The Llama tensors minus the dense MLP, plus the router and the experts of every layer.
  const tensors = llamaTensorShapes({ ...s, intermediate: 1, vocab: VOCAB }).filter(([n]) => !/\.mlp\./.test(n));
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}.block_sparse_moe`;
    tensors.push([`${p}.gate.weight`, [s.experts, s.hidden]]);
    for (let e = 0; e < s.experts; e++) {
      tensors.push([`${p}.experts.${e}.w1.weight`, [s.expertIntermediate, s.hidden]]);
      tensors.push([`${p}.experts.${e}.w2.weight`, [s.hidden, s.expertIntermediate]]);
      tensors.push([`${p}.experts.${e}.w3.weight`, [s.expertIntermediate, s.hidden]]);
    }
  }
  const config = {
    architectures: ["MixtralForCausalLM"], model_type: "mixtral", hidden_size: s.hidden, intermediate_size: s.expertIntermediate,
    num_hidden_layers: s.layers, num_attention_heads: s.heads, num_key_value_heads: s.kvHeads, vocab_size: VOCAB,
    num_local_experts: s.experts, num_experts_per_tok: s.topK, max_position_embeddings: 2048, rms_norm_eps: 1e-5,
    rope_theta: 1e6, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
  };
  return writeRandomModel(dir, tensors, config, "BF16", tokenizerDir);
}
