// The engine runs on its own Worker: while a pass of over a second runs (a streamed model under a
// 64 MiB budget, one thread, a 512-token prefill chunk), the HTTP thread still answers /health.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { join } from "node:path";
import { ROOT } from "./paths.ts";
import { metrics, postJson, startServer, type RunningServer } from "./serve-helpers.ts";
import { slowFlags, slowModel } from "./slow-model.ts";

let server: RunningServer;

beforeAll(async () => {
  server = await startServer(join(ROOT, "dist/airllm"), [slowModel(), ...slowFlags("64MiB"), "--parallel", "1", "--ctx", "700"]);
});
afterAll(async () => {
  await server?.stop();
});

test("/health answers in under 100 ms while passes of over a second run", async () => {
  const prompt = Array.from({ length: 600 }, (_, i) => 3 + (i % 500));
  let done = false;
  const generation = postJson(`${server.url}/v1/completions`, { prompt, max_tokens: 2, temperature: 0 }).finally(() => (done = true));
  const latencies: number[] = [];
  while (!done) {
    const t0 = performance.now();
    const res = await fetch(`${server.url}/health`);
    latencies.push(performance.now() - t0);
    expect(res.status).toBe(200);
    await Bun.sleep(25);
  }
  const r = await generation;
  expect(r.status).toBe(200);
  expect(r.json.usage.prompt_tokens).toBe(600);
  const m = await metrics(server.url);
  // The passes really were long (a 512-token prefill chunk), and streamed.
  expect(m.get("airllm_pass_seconds_max")!).toBeGreaterThan(1);
  expect(m.get("airllm_streamed_bytes_per_pass")!).toBeGreaterThan(32 * 2 ** 20);
  expect(latencies.length).toBeGreaterThan(20);
  console.log(`health: ${latencies.length} probes, slowest ${Math.max(...latencies).toFixed(1)} ms; longest pass ${m.get("airllm_pass_seconds_max")!.toFixed(2)} s`);
  expect(Math.max(...latencies)).toBeLessThan(100);
});
