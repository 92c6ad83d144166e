// Serving benchmark: `airllm serve` (dist/airllm) on a streamed model under a memory budget, N
// concurrent streaming requests at N = 1, 4, 16, 64 (--parallel N): aggregate tokens/s against
// N × the single-stream rate, time to first token, pass time; then the prefill a prefix-cache hit
// saves; then, with --peer, llama-cpp-python's server on the same GGUF at the same concurrency.
//   bun bench/serve-throughput.ts [--max-memory 512MiB] [--levels 1,4,16,64] [--tokens 16]
//                                 [--parts safetensors,prefix,gguf] [--peer] [--json FILE]
// The ~1B random Llama (bench/random-model.ts) is written to $TMPDIR on first use; --peer needs
// its Q8_0 GGUF from bench/make_gguf_bench_models.py (llama-cpp-python) and PYTHON with
// llama-cpp-python's server installed (pip install 'llama-cpp-python[server]'). Its server
// interrupts a running request whenever a new one arrives unless told not to, so it is started
// with --interrupt_requests False: then it queues them, one at a time.
import { existsSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { LLAMA_1B, writeRandomLlama } from "./random-model.ts";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
};
const has = (name: string) => process.argv.includes(`--${name}`);
const budget = arg("max-memory", "512MiB");
const levels = arg("levels", "1,4,16,64").split(",").map(Number);
const parts = new Set(arg("parts", "safetensors,prefix,gguf").split(","));
const tokens = Number(arg("tokens", "16"));
const root = resolve(import.meta.dir, "..");
const binary = join(root, "dist/airllm");
const modelDir = join(tmpdir(), "airllm-bench-llama1b-bf16");
const ggufDir = join(tmpdir(), "airllm-bench-gguf");
const python = process.env.PYTHON ?? "python3";
writeRandomLlama(modelDir, LLAMA_1B, resolve(root, "../shared/models/stories260K-hf"));

/** Distinct prompts of about 16 tokens (stories260K's vocabulary). */
const prompt = (i: number) => `Once upon a time, in a town called number ${i}, there lived a`;

interface Server {
  url: string;
  stop(): Promise<void>;
}

async function waitReady(url: string, proc: { exitCode: number | null }, what: string): Promise<void> {
  for (let i = 0; i < 6000; i++) {
    if (proc.exitCode !== null) throw new Error(`${what} exited with ${proc.exitCode}`);
    try {
      const r = await fetch(url);
      if (r.status === 200) return;
    } catch {}
    await Bun.sleep(100);
  }
  throw new Error(`${what} not ready after 10 minutes`);
}

async function airllmServer(model: string, extra: string[]): Promise<Server> {
  const port = 18000 + Math.floor(Math.random() * 2000);
  const proc = Bun.spawn([binary, "serve", model, "--device", "cpu", "--port", String(port), "--max-memory", budget, ...extra], { stdout: "ignore", stderr: "inherit" });
  const url = `http://127.0.0.1:${port}`;
  await waitReady(`${url}/health`, proc, "airllm serve");
  return {
    url,
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

async function llamaCppServer(gguf: string, ctx: number): Promise<Server> {
  const port = 20000 + Math.floor(Math.random() * 2000);
  const proc = Bun.spawn([python, "-m", "llama_cpp.server", "--model", gguf, "--host", "127.0.0.1", "--port", String(port), "--n_ctx", String(ctx), "--n_threads", String(navigator.hardwareConcurrency), "--interrupt_requests", "False"], { stdout: "ignore", stderr: "ignore" });
  const url = `http://127.0.0.1:${port}`;
  await waitReady(`${url}/v1/models`, proc, "llama_cpp.server");
  return {
    url,
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

interface RequestTiming {
  ttftMs: number;
  endMs: number;
  tokens: number;
}

/** One streaming completion: time to the first token, to the end, and tokens generated. */
async function streamed(url: string, text: string, maxTokens: number, t0: number): Promise<RequestTiming> {
  const res = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ prompt: text, max_tokens: maxTokens, temperature: 0, stream: true }),
  });
  if (res.status !== 200) throw new Error(`status ${res.status}: ${await res.text()}`);
  let ttft = 0;
  let n = 0;
  let buf = "";
  const decoder = new TextDecoder();
  for await (const chunk of res.body!) {
    buf += decoder.decode(chunk, { stream: true });
    let at;
    while ((at = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, at).trim();
      buf = buf.slice(at + 2);
      if (!event.startsWith("data: ") || event === "data: [DONE]") continue;
      const data = JSON.parse(event.slice(6));
      const c = data.choices?.[0];
      // A token event: a choice without finish_reason (text may be "" mid-character).
      if (c && c.finish_reason === null) {
        n++;
        if (ttft === 0) ttft = performance.now() - t0;
      }
    }
  }
  return { ttftMs: ttft, endMs: performance.now() - t0, tokens: n };
}

interface Level {
  concurrency: number;
  tokens: number;
  wallS: number;
  aggregateTokS: number;
  /** Sum over requests of (tokens - 1) / (end - first token): the decode phase alone. */
  decodeTokS: number;
  ttftMedianMs: number;
  ttftMaxMs: number;
  passMsMean: number | null;
}

async function metric(url: string, name: string): Promise<number | null> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  return line ? Number(line.split(" ")[1]) : null;
}

async function level(server: Server, n: number, isAirllm: boolean): Promise<Level> {
  await streamed(server.url, prompt(999), 2, performance.now()); // warm-up: page cache, threads
  const passes0 = isAirllm ? await metric(server.url, "airllm_passes_total") : null;
  const secs0 = isAirllm ? await metric(server.url, "airllm_pass_seconds_total") : null;
  const t0 = performance.now();
  const runs = await Promise.all(Array.from({ length: n }, (_, i) => streamed(server.url, prompt(i), tokens, t0)));
  const wall = Math.max(...runs.map((r) => r.endMs)) / 1000;
  const total = runs.reduce((a, r) => a + r.tokens, 0);
  const ttfts = runs.map((r) => r.ttftMs).sort((a, b) => a - b);
  let passMs: number | null = null;
  if (isAirllm) {
    const dp = (await metric(server.url, "airllm_passes_total"))! - passes0!;
    const ds = (await metric(server.url, "airllm_pass_seconds_total"))! - secs0!;
    passMs = (ds / dp) * 1000;
  }
  return {
    concurrency: n,
    tokens: total,
    wallS: round(wall),
    aggregateTokS: round(total / wall),
    decodeTokS: round(runs.reduce((a, r) => a + (r.tokens > 1 ? (r.tokens - 1) / ((r.endMs - r.ttftMs) / 1000) : 0), 0)),
    ttftMedianMs: Math.round(ttfts[Math.floor(ttfts.length / 2)]!),
    ttftMaxMs: Math.round(ttfts.at(-1)!),
    passMsMean: passMs === null ? null : Math.round(passMs),
  };
}

const round = (v: number) => Math.round(v * 100) / 100;

function report(name: string, rows: Level[]): void {
  const single = rows.find((r) => r.concurrency === 1)?.aggregateTokS ?? null;
  console.log(`\n${name}`);
  const singleDecode = rows.find((r) => r.concurrency === 1)?.decodeTokS ?? null;
  console.log("  N   tokens  wall s   agg tok/s  vs N×single  decode tok/s  vs N×single  TTFT median/max ms  pass ms");
  for (const r of rows) {
    const eff = single === null ? "" : (r.aggregateTokS / (r.concurrency * single)).toFixed(2);
    const deff = singleDecode === null ? "" : (r.decodeTokS / (r.concurrency * singleDecode)).toFixed(2);
    console.log(
      `  ${String(r.concurrency).padEnd(3)} ${String(r.tokens).padStart(6)}  ${r.wallS.toFixed(1).padStart(6)}  ${r.aggregateTokS.toFixed(2).padStart(9)}  ${eff.padStart(11)}  ` +
        `${r.decodeTokS.toFixed(2).padStart(12)}  ${deff.padStart(11)}  ${`${r.ttftMedianMs}/${r.ttftMaxMs}`.padStart(18)}  ${r.passMsMean ?? "-"}`,
    );
  }
}

async function airllmLevels(model: string): Promise<Level[]> {
  const rows: Level[] = [];
  for (const n of levels) {
    // Each level's KV cache holds N contexts of prompt + tokens (rounded up to pages).
    const s = await airllmServer(model, ["--parallel", String(n), "--ctx", String(32 + tokens), "--max-queue", "0"]);
    try {
      rows.push(await level(s, n, true));
    } finally {
      await s.stop();
    }
  }
  return rows;
}

/** Prefill saved: the same 200-token shared prefix, cold (cache off) and as a cache hit. */
async function prefixSaving(): Promise<{ prefixTokens: number; coldPromptMs: number; hitPromptMs: number; cachedTokens: number }> {
  const shared = Array.from({ length: 200 }, (_, i) => 3 + ((i * 37) % 500));
  const ask = (s: Server, tail: number[]) =>
    fetch(`${s.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ prompt: [1, ...shared, ...tail], max_tokens: 1, temperature: 0 }) }).then((r) => r.json() as Promise<any>);
  const timed = async (s: Server, tail: number[]) => {
    const t0 = performance.now();
    const j = await ask(s, tail);
    return { ms: performance.now() - t0, cached: j.usage.prompt_tokens_details.cached_tokens as number };
  };
  const on = await airllmServer(modelDir, ["--parallel", "1", "--ctx", "256"]);
  let hit;
  try {
    await timed(on, [403, 407]);
    hit = await timed(on, [261, 378, 300]);
  } finally {
    await on.stop();
  }
  const off = await airllmServer(modelDir, ["--parallel", "1", "--ctx", "256", "--no-prefix-cache"]);
  let cold;
  try {
    await timed(off, [403, 407]);
    cold = await timed(off, [261, 378, 300]);
  } finally {
    await off.stop();
  }
  return { prefixTokens: 201, coldPromptMs: Math.round(cold.ms), hitPromptMs: Math.round(hit.ms), cachedTokens: hit.cached };
}

const results: Record<string, unknown> = { date: new Date().toISOString(), cpus: navigator.hardwareConcurrency, budget, tokens, levels };
if (parts.has("safetensors")) {
  const safetensorsRows = await airllmLevels(modelDir);
  report(`airllm serve, 1B BF16 safetensors, --max-memory ${budget}, ${tokens} tokens per request`, safetensorsRows);
  results.safetensors = safetensorsRows;
}

if (parts.has("prefix")) {
  const prefix = await prefixSaving();
  console.log(`\nprefix cache: ${prefix.prefixTokens}-token prompt prefix, request time with max_tokens 1: cold ${prefix.coldPromptMs} ms, hit ${prefix.hitPromptMs} ms (${prefix.cachedTokens} tokens cached)`);
  results.prefix = prefix;
}

if (parts.has("gguf") && has("peer")) {
  const gguf = join(ggufDir, "llama1b-q8_0.gguf");
  if (!existsSync(gguf)) throw new Error(`${gguf} is missing: python3 bench/make_gguf_bench_models.py ${modelDir} ${ggufDir}`);
  const ours = await airllmLevels(gguf);
  report(`airllm serve, the same model as GGUF Q8_0, --max-memory ${budget}`, ours);
  const peer: Level[] = [];
  const s = await llamaCppServer(gguf, 32 + tokens + 16);
  try {
    for (const n of levels) peer.push(await level(s, n, false));
  } finally {
    await s.stop();
  }
  report("llama-cpp-python server, the same GGUF Q8_0 (whole file mapped, no budget; one request at a time)", peer);
  results.ggufAirllm = ours;
  results.ggufLlamaCpp = peer;
}

const out = arg("json", "");
if (out) writeFileSync(out, JSON.stringify(results, null, 1) + "\n");
