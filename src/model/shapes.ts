// The shape config.json implies for each checkpoint tensor of the Llama family; checked at load
// so a mismatched checkpoint fails with names and numbers instead of garbage output.
import type { ModelConfig } from "./config.ts";

export function expectedShape(c: ModelConfig, name: string): readonly number[] {
  const h = c.hiddenSize;
  const q = c.numHeads * c.headDim;
  const kv = c.numKvHeads * c.headDim;
  const i = c.intermediateSize;
  if (name === "model.embed_tokens.weight" || name === "lm_head.weight") return [c.vocabSize, h];
  if (name === "model.norm.weight") return [h];
  const m = /^model\.layers\.\d+\.(.+)$/.exec(name);
  const table: Record<string, readonly number[]> = {
    "input_layernorm.weight": [h],
    "post_attention_layernorm.weight": [h],
    "self_attn.q_proj.weight": [q, h],
    "self_attn.k_proj.weight": [kv, h],
    "self_attn.v_proj.weight": [kv, h],
    "self_attn.o_proj.weight": [h, q],
    "self_attn.q_proj.bias": [q],
    "self_attn.k_proj.bias": [kv],
    "self_attn.v_proj.bias": [kv],
    "self_attn.o_proj.bias": [h],
    "mlp.gate_proj.weight": [i, h],
    "mlp.up_proj.weight": [i, h],
    "mlp.down_proj.weight": [h, i],
    "mlp.gate_proj.bias": [i],
    "mlp.up_proj.bias": [i],
    "mlp.down_proj.bias": [h],
  };
  const shape = m ? table[m[1]] : undefined;
  if (!shape) throw new Error(`internal: no expected shape for tensor ${name}`);
  return shape;
}
