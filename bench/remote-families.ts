// CPU decode of each remote-code family against a Llama of the same shape (same hidden size,
// heads, KV heads, intermediate size, layers, vocabulary, BF16 weights), resident (a budget that
// holds everything: every weight read once into allocated RAM, so the page cache plays no part)
// and streamed (a budget of half the weights: the rest is read from the files on every pass).
// Both models are loaded side by side and decode token by token in turn (Llama then family, then
// family then Llama, ...), so a load change on a shared machine hits both alike; the figure is the
// median over tokens of family ÷ Llama for adjacent tokens, over `rounds` fresh loads.
//   bun bench/remote-families.ts [--tokens 32] [--rounds 2] [--layers 6] [--only qwen,chatglm]
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { AutoModel, type FromPretrainedOptions } from "../src/index.ts";
import { llamaTensorShapes, writeRandomModel } from "./random-model.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const tokens = Number(arg("tokens", "32"));
const rounds = Number(arg("rounds", "2"));
const layers = Number(arg("layers", "6"));
const only = arg("only", "").split(",").filter(Boolean);
const stories = resolve(import.meta.dir, "../../shared/models/stories260K-hf");
const V = 512;
const H = 1024;
const HEADS = 16;
const HD = H / HEADS;
const INTER = 2816;

type Tensors = [string, number[]][];
interface Family {
  readonly kvHeads: number;
  readonly tensors: () => Tensors;
  readonly config: Record<string, unknown>;
}

/** The layer tensors of a family with q|k|v fused into `qkv` and the given norms, o and MLP names. */
function layerTensors(prefix: (i: number) => string, t: (p: string, kv: number) => Tensors, kv: number): Tensors {
  return Array.from({ length: layers }, (_, i) => t(prefix(i), kv)).flat();
}

const qkvRows = (kv: number) => HEADS * HD + 2 * kv * HD;

const FAMILIES: Record<string, Family> = {
  // ChatGLM2/3: fused qkv with bias, 4 query groups, rotary on half of each head, gate|up fused.
  chatglm: {
    kvHeads: 4,
    config: {
      model_type: "chatglm", num_layers: layers, padded_vocab_size: V, hidden_size: H, ffn_hidden_size: INTER, kv_channels: HD,
      num_attention_heads: HEADS, seq_length: 2048, multi_query_attention: true, multi_query_group_num: 4, add_qkv_bias: true,
      rmsnorm: true, layernorm_epsilon: 1e-5, original_rope: true,
    },
    tensors: () => [
      ["transformer.embedding.word_embeddings.weight", [V, H]],
      ...layerTensors((i) => `transformer.encoder.layers.${i}`, (p, kv) => [
        [`${p}.input_layernorm.weight`, [H]],
        [`${p}.self_attention.query_key_value.weight`, [qkvRows(kv), H]],
        [`${p}.self_attention.query_key_value.bias`, [qkvRows(kv)]],
        [`${p}.self_attention.dense.weight`, [H, HEADS * HD]],
        [`${p}.post_attention_layernorm.weight`, [H]],
        [`${p}.mlp.dense_h_to_4h.weight`, [2 * INTER, H]],
        [`${p}.mlp.dense_4h_to_h.weight`, [H, INTER]],
      ], 4),
      ["transformer.encoder.final_layernorm.weight", [H]],
      ["transformer.output_layer.weight", [V, H]],
    ],
  },
  ...baichuanFamilies(),
  internlm: {
    kvHeads: HEADS,
    config: { model_type: "internlm", hidden_size: H, intermediate_size: INTER, num_hidden_layers: layers, num_attention_heads: HEADS, vocab_size: V, max_position_embeddings: 2048, bias: true },
    tensors: () => withBiases(llamaTensorShapes({ hidden: H, intermediate: INTER, layers, heads: HEADS, kvHeads: HEADS, vocab: V })),
  },
  internlm2: internlm2Family(2048),
  // InternLM2.5's dynamic NTK rope past a trained context of 4: every pass has per-sequence tables.
  "internlm2_5-dynamic": internlm2Family(4, { type: "dynamic", factor: 2.0 }),
  qwen: qwenFamily(8192),
  // Past seq_length 4: NTK alpha from the prefill and logn-scaled queries on every pass.
  "qwen-ntk-logn": qwenFamily(4),
};

function baichuanFamilies(): Record<string, Family> {
  const tensors = (): Tensors => [
    ["model.embed_tokens.weight", [V, H]],
    ...layerTensors((i) => `model.layers.${i}`, (p) => [
      [`${p}.input_layernorm.weight`, [H]],
      [`${p}.self_attn.W_pack.weight`, [3 * H, H]],
      [`${p}.self_attn.o_proj.weight`, [H, H]],
      [`${p}.post_attention_layernorm.weight`, [H]],
      [`${p}.mlp.gate_proj.weight`, [INTER, H]],
      [`${p}.mlp.up_proj.weight`, [INTER, H]],
      [`${p}.mlp.down_proj.weight`, [H, INTER]],
    ], HEADS),
    ["model.norm.weight", [H]],
    ["lm_head.weight", [V, H]],
  ];
  const base = { model_type: "baichuan", hidden_size: H, intermediate_size: INTER, num_hidden_layers: layers, num_attention_heads: HEADS, vocab_size: V };
  return {
    // Baichuan-7B: RoPE, plain head.
    baichuan: { kvHeads: HEADS, tensors, config: { ...base, architectures: ["BaiChuanForCausalLM"], max_position_embeddings: 2048 } },
    // Baichuan2-7B: RoPE, NormHead (the logits' columns scaled by the head rows' inverse norms).
    "baichuan2-7b": { kvHeads: HEADS, tensors, config: { ...base, architectures: ["BaichuanForCausalLM"], max_position_embeddings: 2048 } },
    // Baichuan2-13B: ALiBi, NormHead.
    "baichuan2-13b": { kvHeads: HEADS, tensors, config: { ...base, architectures: ["BaichuanForCausalLM"], model_max_length: 2048 } },
  };
}

function internlm2Family(maxPos: number, ropeScaling: Record<string, unknown> | null = null): Family {
  const kv = 4;
  return {
    kvHeads: kv,
    config: {
      model_type: "internlm2", hidden_size: H, intermediate_size: INTER, num_hidden_layers: layers, num_attention_heads: HEADS,
      num_key_value_heads: kv, vocab_size: V, max_position_embeddings: maxPos, rope_theta: 1e6, bias: false, rope_scaling: ropeScaling,
    },
    tensors: () => [
      ["model.tok_embeddings.weight", [V, H]],
      ...layerTensors((i) => `model.layers.${i}`, (p) => [
        [`${p}.attention_norm.weight`, [H]],
        [`${p}.attention.wqkv.weight`, [qkvRows(kv), H]],
        [`${p}.attention.wo.weight`, [H, HEADS * HD]],
        [`${p}.ffn_norm.weight`, [H]],
        [`${p}.feed_forward.w1.weight`, [INTER, H]],
        [`${p}.feed_forward.w3.weight`, [INTER, H]],
        [`${p}.feed_forward.w2.weight`, [H, INTER]],
      ], kv),
      ["model.norm.weight", [H]],
      ["output.weight", [V, H]],
    ],
  };
}

function qwenFamily(seqLength: number): Family {
  return {
    kvHeads: HEADS,
    config: {
      model_type: "qwen", hidden_size: H, intermediate_size: 2 * INTER, num_hidden_layers: layers, num_attention_heads: HEADS, kv_channels: HD,
      vocab_size: V, seq_length: seqLength, max_position_embeddings: 2048, use_dynamic_ntk: true, use_logn_attn: true, no_bias: true,
    },
    tensors: () => [
      ["transformer.wte.weight", [V, H]],
      ...layerTensors((i) => `transformer.h.${i}`, (p) => [
        [`${p}.ln_1.weight`, [H]],
        [`${p}.attn.c_attn.weight`, [3 * H, H]],
        [`${p}.attn.c_attn.bias`, [3 * H]],
        [`${p}.attn.c_proj.weight`, [H, H]],
        [`${p}.ln_2.weight`, [H]],
        [`${p}.mlp.w1.weight`, [INTER, H]],
        [`${p}.mlp.w2.weight`, [INTER, H]],
        [`${p}.mlp.c_proj.weight`, [H, INTER]],
      ], HEADS),
      ["transformer.ln_f.weight", [H]],
      ["lm_head.weight", [V, H]],
    ],
  };
}

/** Llama's tensors plus q/k/v/o biases (InternLM's `bias`). */
function withBiases(t: Tensors): Tensors {
  return t.flatMap(([name, shape]): Tensors => {
    const m = /^(.*\.(q|k|v|o)_proj)\.weight$/.exec(name);
    return m ? [[name, shape], [`${m[1]}.bias`, [shape[0]!]]] : [[name, shape]];
  });
}

function llamaDir(kvHeads: number): { dir: string; bytes: number } {
  const dir = join(tmpdir(), `airllm-bench-remote-llama-kv${kvHeads}-l${layers}`);
  const config = {
    model_type: "llama", hidden_size: H, intermediate_size: INTER, num_hidden_layers: layers, num_attention_heads: HEADS,
    num_key_value_heads: kvHeads, vocab_size: V, max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false,
  };
  const bytes = writeRandomModel(dir, llamaTensorShapes({ hidden: H, intermediate: INTER, layers, heads: HEADS, kvHeads, vocab: V }), config, "BF16", stories);
  return { dir, bytes };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** A model decoding greedily, one timed token at a time. */
async function decoder(dir: string, opts: FromPretrainedOptions) {
  const model = await AutoModel.from_pretrained(dir, { device: "cpu", max_seq_len: 64, ...opts });
  const seq = model.newSequence();
  let [logits] = model.forward([seq], [[1, 403, 407, 261, 378]]);
  return {
    step(): number {
      let id = 0;
      for (let j = 1; j < logits!.length; j++) if (logits![j]! > logits![id]!) id = j;
      const t0 = performance.now();
      [logits] = model.forward([seq], [[id]]);
      return performance.now() - t0;
    },
    dispose: () => model.dispose(),
  };
}

/** Per-token times of both models, in turn, over fresh loads, and the median of their adjacent ratios. */
async function compare(llamaDir: string, familyDir: string, opts: FromPretrainedOptions) {
  const l: number[] = [];
  const f: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const llama = await decoder(llamaDir, opts);
    const family = await decoder(familyDir, opts);
    try {
      for (let i = 0; i < tokens; i++) {
        if (i % 2 === 0) {
          l.push(llama.step());
          f.push(family.step());
        } else {
          f.push(family.step());
          l.push(llama.step());
        }
      }
    } finally {
      llama.dispose();
      family.dispose();
    }
  }
  const ratios = f.map((t, i) => t / l[i]!);
  return { llama_ms_median: +median(l).toFixed(2), family_ms_median: +median(f).toFixed(2), ratio_median: +median(ratios).toFixed(3), ratios: ratios.map((x) => +x.toFixed(3)) };
}

const results: Record<string, unknown> = {};
for (const [name, f] of Object.entries(FAMILIES)) {
  if (only.length > 0 && !only.includes(name)) continue;
  const llama = llamaDir(f.kvHeads);
  const dir = join(tmpdir(), `airllm-bench-remote-${name}-l${layers}`);
  const bytes = writeRandomModel(dir, f.tensors(), f.config, "BF16", stories);
  const row: Record<string, unknown> = { weight_bytes: bytes, llama_weight_bytes: llama.bytes };
  for (const [mode, opts] of [["resident", { max_memory: 2 ** 40 }], ["streamed", { max_memory: Math.round(llama.bytes / 2) }]] as const) {
    row[mode] = await compare(llama.dir, dir, opts);
  }
  results[name] = row;
  console.error(name, JSON.stringify(row));
}
console.log(JSON.stringify({ shape: { hidden: H, heads: HEADS, head_dim: HD, intermediate: INTER, layers, vocab: V, dtype: "BF16" }, tokens, rounds, results }, null, 1));
