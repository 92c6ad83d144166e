// Speculative decoding on streamed models (every layer read each pass, CPU):
//  1. n-gram drafts, greedy, stories260K from <s> for 200 tokens: tokens per pass measured, beside
//     a plain simulation of the same drafter over llama2.c's reference sequence (no model: a
//     draft token counts when it equals the reference's next token);
//  2. an input-grounded prompt (a passage, then its beginning again) for n-gram drafts;
//  3. tok/s with and without speculation in the same run;
//  4. a draft model (stories260K drafting for the 1B random Llama shares its vocabulary, but not
//     its knowledge: acceptance is what random weights give);
//  5. wall time per pass against the pass's token count (1, 8, 32, 64), streamed, for a chain and
//     for a token tree of as many rows (tree attention);
//  6. token trees (--speculate tree): from the context alone on stories260K; stories260K drafting
//     for itself (the only same-vocabulary pair at hand: the draft is the target, so only sampling
//     leaves anything to reject), chain against tree, greedy and at temperature 1; the 1B model
//     with stories260K's trees.
//   bun bench/speculative.ts [--draft-tokens 8] [--passes-only] [--json bench/results/speculative.json]
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { NgramDrafter } from "../src/engine/speculative/ngram-drafter.ts";
import { preorder, treeAttentionRows } from "../src/engine/speculative/tree-layout.ts";
import { AutoModel, type CausalLM, type FromPretrainedOptions } from "../src/index.ts";
import { LLAMA_1B, writeRandomLlama } from "./random-model.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const K = Number(arg("draft-tokens", "8"));
/** Only the 1B model's pass times (chain and tree), not the generation runs. */
const passesOnly = process.argv.includes("--passes-only");
const root = resolve(import.meta.dir, "..");
const stories = resolve(root, "../shared/models/stories260K-hf");
const ref: number[] = JSON.parse(await Bun.file(resolve(root, "../shared/refs/stories260K/ref_bos_200.json")).text()).sequence_after_bos_prompt_then_greedy;
const big = join(tmpdir(), "airllm-bench-llama1b-bf16");
writeRandomLlama(big, LLAMA_1B, stories);

/** Loads `path` under the smallest budget that streams every layer (nothing resident). */
async function streamed(path: string, o: FromPretrainedOptions): Promise<CausalLM> {
  const probe = await AutoModel.from_pretrained(path, { device: "cpu", ...o, max_memory: "1TiB" });
  const min = probe.memoryPlan!.minBudget;
  probe.dispose();
  const m = await AutoModel.from_pretrained(path, { device: "cpu", ...o, max_memory: String(min) });
  const w = m.engine.weightStats();
  if (w.residentUnits > 2) throw new Error(`expected every layer streamed, ${w.residentUnits} units resident`);
  return m;
}

/** Tokens per pass the n-gram drafter gives on `sequence` when the model's greedy choices are `sequence`. */
function simulate(context: number[], sequence: number[], k: number): { passes: number; tokens: number } {
  const d = new NgramDrafter();
  const ctx = [...context];
  let passes = 0;
  let i = 0;
  while (i < sequence.length) {
    // The first token comes from the prompt's pass; then each decode pass may carry drafts.
    if (i === 0) {
      ctx.push(sequence[0]!);
      i = 1;
      passes++;
      continue;
    }
    const budget = Math.min(k, sequence.length - i - 1);
    const drafts = budget > 0 ? d.propose(ctx, budget).tokens : [];
    let accepted = 0;
    while (accepted < drafts.length && drafts[accepted] === sequence[i + accepted]) accepted++;
    const take = Math.min(accepted + 1, sequence.length - i);
    for (let j = 0; j < take; j++) ctx.push(sequence[i + j]!);
    i += take;
    passes++;
  }
  return { passes, tokens: sequence.length };
}

const round = (v: number, d = 2) => Math.round(v * 10 ** d) / 10 ** d;

/** A tree given by its parents (each after its parent), in preorder. */
function preorderOf(parents: number[]) {
  return preorder({ tokens: parents.map((_, i) => 3 + i), parents, q: parents.map(() => null) });
}
const results: Record<string, unknown> = { date: new Date().toISOString(), cpus: navigator.hardwareConcurrency, draftTokens: K };

// 1-3: stories260K streamed, greedy from <s>.
if (!passesOnly) {
  const m = await streamed(stories, { max_seq_len: 512, min_seq_len: 512, threads: 1 });
  // The simulation's drafter drafts K tokens whenever it can: so does this run (no adaptation).
  const fixed = await m.generate([1], { maxNewTokens: 200, speculate: "ngram", draftTokens: K, adaptiveDraft: false });
  const sim = simulate([1], ref, K);
  const perPassFixed = fixed.tokens.length / fixed.decodePasses;
  // Timed A B A B (plain, speculative with the default adaptive length): the faster of each.
  let plainMs = Infinity;
  let specMs = Infinity;
  let treeMs = Infinity;
  let spec = fixed;
  let tree = fixed;
  for (let round = 0; round < 3; round++) {
    const t0 = performance.now();
    const plain = await m.generate([1], { maxNewTokens: 200 });
    plainMs = Math.min(plainMs, performance.now() - t0);
    const t1 = performance.now();
    spec = await m.generate([1], { maxNewTokens: 200, speculate: "ngram", draftTokens: K });
    specMs = Math.min(specMs, performance.now() - t1);
    const t2 = performance.now();
    tree = await m.generate([1], { maxNewTokens: 200, speculate: "tree", draftTokens: K });
    treeMs = Math.min(treeMs, performance.now() - t2);
    for (const r of [spec, plain, fixed, tree]) if (r.tokens.join() !== ref.join()) throw new Error("greedy output differs from llama2.c's reference");
  }
  const perPass = spec.tokens.length / spec.decodePasses;
  const speedup = plainMs / specMs;
  console.log(`stories260K streamed, n-gram (n ≤ 3, ≤ ${K} drafts), 200 greedy tokens from <s>:`);
  console.log(`  tokens per pass with ${K} drafts whenever there is a match: ${round(perPassFixed, 3)}; the simulation over llama2.c's sequence: ${round(sim.tokens / sim.passes, 3)}`);
  console.log(`  adaptive length: ${round(perPass)} tokens per pass, ${spec.speculation!.accepted} of ${spec.speculation!.drafted} drafts accepted`);
  console.log(`  ${round(200 / (plainMs / 1000), 1)} tok/s plain, ${round(200 / (specMs / 1000), 1)} tok/s speculative: ${round(speedup)}× (${round(speedup / perPass)} × tokens per pass)`);
  const treeFixed = await m.generate([1], { maxNewTokens: 200, speculate: "tree", draftTokens: K, adaptiveDraft: false });
  if (treeFixed.tokens.join() !== ref.join()) throw new Error("tree speculation changed the greedy output");
  const treePerPass = tree.tokens.length / tree.decodePasses;
  console.log(`  tree from the context (n-gram forks at the root), ${K} nodes whenever there is a match: ${round(treeFixed.tokens.length / treeFixed.decodePasses, 3)} tokens per pass`);
  console.log(`  tree, adaptive: ${round(treePerPass)} tokens per pass, ${round(200 / (treeMs / 1000), 1)} tok/s: ${round(plainMs / treeMs)}× plain (${round(plainMs / treeMs / treePerPass)} × tokens per pass)`);
  results.storiesTree = { fixedTokensPerPass: round(treeFixed.tokens.length / treeFixed.decodePasses, 3), adaptiveTokensPerPass: round(treePerPass, 3), treeMs: Math.round(treeMs), speedup: round(plainMs / treeMs, 3) };
  results.storiesNgram = {
    fixedTokensPerPass: round(perPassFixed, 3), simulated: round(sim.tokens / sim.passes, 3), adaptiveTokensPerPass: round(perPass, 3),
    plainMs: Math.round(plainMs), specMs: Math.round(specMs), speedup: round(speedup, 3), accepted: spec.speculation!.accepted, drafted: spec.speculation!.drafted,
  };

  // 2: a passage, then its first 24 tokens again: can the model copy, and do n-grams draft it?
  const prompt = [...ref.slice(0, 120), ...ref.slice(0, 24)];
  const g = await m.generate([1, ...prompt], { maxNewTokens: 64, speculate: "ngram", draftTokens: K });
  const plainG = await m.generate([1, ...prompt], { maxNewTokens: 64 });
  if (g.tokens.join() !== plainG.tokens.join()) throw new Error("speculative output differs on the grounded prompt");
  const copied = g.tokens.filter((t, i) => t === ref[24 + i]).length;
  console.log(`  input-grounded (a passage, then its start again): ${round(g.tokens.length / g.decodePasses)} tokens per pass; the model copies ${copied} of 64 tokens`);
  results.storiesGrounded = { tokensPerPass: round(g.tokens.length / g.decodePasses, 3), copied };
  m.dispose();
}

// 6: stories260K streamed, drafting for itself (resident): chain against tree, greedy and sampled.
if (!passesOnly) {
  const m = await streamed(stories, { max_seq_len: 512, min_seq_len: 512, threads: 1, draft_model: stories });
  const perPass = (rs: { tokens: number[]; decodePasses: number }[]) => rs.reduce((a, r) => a + r.tokens.length, 0) / rs.reduce((a, r) => a + r.decodePasses, 0);
  const self: Record<string, number> = {};
  for (const mode of ["draft", "tree"] as const) {
    const greedy = await m.generate([1], { maxNewTokens: 200, speculate: mode, draftTokens: K, adaptiveDraft: false });
    if (greedy.tokens.join() !== ref.join()) throw new Error(`${mode} speculation changed the greedy output`);
    const sampled = [];
    for (let seed = 0; seed < 8; seed++) sampled.push(await m.generate([1], { maxNewTokens: 100, speculate: mode, draftTokens: K, adaptiveDraft: false, temperature: 1, seed }));
    self[`${mode}Greedy`] = round(perPass([greedy]), 3);
    self[`${mode}Sampled`] = round(perPass(sampled), 3);
  }
  console.log(`stories260K streamed, drafting for itself, ${K} draft tokens (nodes) every pass:`);
  console.log(`  greedy: chain ${self.draftGreedy} tokens per pass, tree ${self.treeGreedy}; temperature 1 (8 seeds × 100 tokens): chain ${self.draftSampled}, tree ${self.treeSampled}`);
  results.storiesSelfDraft = self;
  m.dispose();
}

// 4-5: the 1B random Llama streamed (BF16, nothing resident).
{
  const m = await streamed(big, { max_seq_len: 160, min_seq_len: 160 });
  console.log(`1B BF16 random Llama streamed (${(m.engine.weightStats().streamedBytes / 2 ** 30).toFixed(2)} GiB per pass):`);
  // Chain and tree passes interleaved, the fastest of 3 each (the machine is shared). The tree:
  // the last token, then forks of 4 under each node in turn.
  const curve: { tokens: number; ms: number }[] = [];
  const treeCurve: { tokens: number; ms: number }[] = [];
  const pass = (T: number, tree: boolean) => {
    const seq = m.newSequence();
    m.forward([seq], [[1]]);
    const ids = Array.from({ length: T }, (_, i) => 3 + i);
    const opts = tree ? { trees: [treeAttentionRows(preorderOf(Array.from({ length: T - 1 }, (_, i) => Math.floor(i / 4) - 1)))] } : {};
    const t0 = performance.now();
    m.forward([seq], [ids], opts);
    const ms = performance.now() - t0;
    seq.dispose();
    return ms;
  };
  const Ts = [1, 8, 32, 64];
  const best = { chain: Ts.map(() => Infinity), tree: Ts.map(() => Infinity) };
  for (let rep = 0; rep < 3; rep++) {
    Ts.forEach((T, i) => {
      best.chain[i] = Math.min(best.chain[i]!, pass(T, false));
      if (T > 1) best.tree[i] = Math.min(best.tree[i]!, pass(T, true));
    });
  }
  Ts.forEach((T, i) => {
    curve.push({ tokens: T, ms: Math.round(best.chain[i]!) });
    if (T > 1) treeCurve.push({ tokens: T, ms: Math.round(best.tree[i]!) });
  });
  console.log(`  pass time against tokens in the pass (fastest of 3): ${curve.map((c) => `${c.tokens}: ${c.ms} ms`).join(", ")}`);
  console.log(`  the same as token trees (forks of 4): ${treeCurve.map((c) => `${c.tokens}: ${c.ms} ms`).join(", ")}`);
  results.passCurve1B = curve;
  results.treePassCurve1B = treeCurve;
  if (passesOnly) {
    m.dispose();
    const out = arg("json", "");
    if (out) writeFileSync(out, JSON.stringify(results, null, 1) + "\n");
    process.exit(0);
  }
  // n-gram drafts on the 1B model (its random weights repeat themselves), A B A B.
  let plainMs = Infinity;
  let specMs = Infinity;
  let spec = null;
  for (let round = 0; round < 2; round++) {
    const t0 = performance.now();
    const plain = await m.generate([1, 403, 407, 261, 378], { maxNewTokens: 32 });
    plainMs = Math.min(plainMs, performance.now() - t0);
    const t1 = performance.now();
    spec = await m.generate([1, 403, 407, 261, 378], { maxNewTokens: 32, speculate: "ngram", draftTokens: K });
    specMs = Math.min(specMs, performance.now() - t1);
    if (spec.tokens.join() !== plain.tokens.join()) throw new Error("n-gram speculation changed the 1B model's greedy output");
  }
  const perPass1B = spec!.tokens.length / spec!.decodePasses;
  console.log(`  n-gram: ${round(perPass1B)} tokens per pass (${spec!.speculation!.accepted} of ${spec!.speculation!.drafted} drafts accepted); ${round(plainMs / specMs)}× the plain decode in the same run (${round(plainMs / specMs / perPass1B)} × tokens per pass)`);
  results.ngram1B = { tokensPerPass: round(perPass1B, 3), plainMs: Math.round(plainMs), specMs: Math.round(specMs), speedup: round(plainMs / specMs, 3), accepted: spec!.speculation!.accepted, drafted: spec!.speculation!.drafted };
  const draftModel = await AutoModel.from_pretrained(big, { device: "cpu", max_seq_len: 160, min_seq_len: 160, max_memory: String(m.memoryPlan!.budget), draft_model: stories });
  const t0 = performance.now();
  const plain = await draftModel.generate([1, 403, 407, 261, 378], { maxNewTokens: 24 });
  const draftPlainMs = performance.now() - t0;
  const t1 = performance.now();
  const drafted = await draftModel.generate([1, 403, 407, 261, 378], { maxNewTokens: 24, speculate: "draft", draftTokens: K });
  const draftSpecMs = performance.now() - t1;
  if (drafted.tokens.join() !== plain.tokens.join()) throw new Error("draft-model speculation changed the 1B model's greedy output");
  const s = drafted.speculation!;
  console.log(`  draft model stories260K: ${round(drafted.tokens.length / drafted.decodePasses)} tokens per pass, ${s.accepted} of ${s.drafted} drafts accepted, ${round(draftPlainMs / draftSpecMs)}× the plain decode (drafting ${Math.round(s.draftMs)} ms)`);
  const t2 = performance.now();
  const treeDrafted = await draftModel.generate([1, 403, 407, 261, 378], { maxNewTokens: 24, speculate: "tree", draftTokens: K });
  const treeSpecMs = performance.now() - t2;
  if (treeDrafted.tokens.join() !== plain.tokens.join()) throw new Error("tree speculation changed the 1B model's greedy output");
  const ts = treeDrafted.speculation!;
  console.log(`  tree from stories260K and the context: ${round(treeDrafted.tokens.length / treeDrafted.decodePasses)} tokens per pass, ${ts.accepted} of ${ts.drafted} nodes accepted, ${round(draftPlainMs / treeSpecMs)}× the plain decode (drafting ${Math.round(ts.draftMs)} ms)`);
  results.tree1B = { tokensPerPass: round(treeDrafted.tokens.length / treeDrafted.decodePasses, 3), accepted: ts.accepted, drafted: ts.drafted, specMs: Math.round(treeSpecMs), draftMs: Math.round(ts.draftMs) };
  results.draft1B = { tokensPerPass: round(drafted.tokens.length / drafted.decodePasses, 3), accepted: s.accepted, drafted: s.drafted, plainMs: Math.round(draftPlainMs), specMs: Math.round(draftSpecMs), draftMs: Math.round(s.draftMs) };
  draftModel.dispose();
  m.dispose();
}

const out = arg("json", "");
if (out) writeFileSync(out, JSON.stringify(results, null, 1) + "\n");
