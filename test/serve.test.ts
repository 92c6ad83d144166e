// `airllm serve` (dist/airllm) listening on loopback, driven by real HTTP clients: fetch and the
// official `openai` package. Outputs are checked against llama2.c's expected text, against the
// same request sent alone, and against `airllm run`; nothing here is a number from our own run.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import OpenAI from "openai";
import { DEFAULT_PAGE_SIZE } from "../src/engine/kv/kv-pool.ts";
import { ROOT, STORIES_HF } from "./paths.ts";
import { metrics, postJson, readEvents, startServer, type RunningServer } from "./serve-helpers.ts";
import { storiesExpectedText, storiesRef } from "./stories-reference.ts";

const BUILT = join(ROOT, "dist/airllm");
const KEY = "test-key-123";
const MODEL_ID = "stories260K-hf";
// ChatML after BOS, written here: stories260K ships no chat template. With BOS in the template the
// rendered text sent as a completion (which adds BOS) is the same ids as the chat request.
const CHATML = "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

let work: string;
let binary: string;
/** --parallel 8, prefix cache on, API key from AIRLLM_API_KEY. */
let cached: RunningServer;
/** --parallel 8 --max-queue 16, prefix cache off, no key. */
let plain: RunningServer;

const auth = { authorization: `Bearer ${KEY}` };

function runCli(args: string[]): { code: number | null; stdout: string; stderr: string } {
  const p = Bun.spawnSync([binary, ...args], { cwd: work, stdin: "ignore", env: { ...process.env, AIRLLM_DEBUG: "" } });
  return { code: p.exitCode, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

async function complete(server: RunningServer, body: object, headers: Record<string, string> = auth) {
  const r = await postJson(`${server.url}/v1/completions`, { model: MODEL_ID, ...body }, headers);
  if (r.status !== 200) throw new Error(`status ${r.status}: ${JSON.stringify(r.json)}`);
  return r.json;
}

// Different prompts and lengths; the empty prompt is BOS alone, whose greedy 200 tokens llama2.c's
// test expects verbatim.
const PROMPTS: { prompt: string; max_tokens: number }[] = [
  { prompt: "", max_tokens: 200 },
  { prompt: "Once upon a time", max_tokens: 40 },
  { prompt: "Tom and Lily went to the park. They", max_tokens: 25 },
  { prompt: "The cat", max_tokens: 60 },
  { prompt: "One day, a little bird found a shiny stone in the grass. The bird", max_tokens: 12 },
  { prompt: "Sam was sad because", max_tokens: 33 },
  { prompt: "The sun", max_tokens: 80 },
  { prompt: "Mom said, \"", max_tokens: 17 },
];

beforeAll(async () => {
  if (!existsSync(BUILT)) throw new Error(`${BUILT} is missing: run \`bun run build\` first (the test command does)`);
  work = mkdtempSync(join(tmpdir(), "airllm-serve-"));
  binary = join(work, "airllm");
  copyFileSync(BUILT, binary);
  Bun.spawnSync(["chmod", "+x", binary]);
  writeFileSync(join(work, "chatml.jinja"), CHATML);
  [cached, plain] = await Promise.all([
    startServer(binary, [STORIES_HF, "--device", "cpu", "--parallel", "8", "--ctx", "512", "--chat-template", join(work, "chatml.jinja")], { AIRLLM_API_KEY: KEY }),
    startServer(binary, [STORIES_HF, "--device", "cpu", "--parallel", "8", "--max-queue", "16", "--ctx", "512", "--no-prefix-cache"]),
  ]);
});

afterAll(async () => {
  await Promise.all([cached?.stop(), plain?.stop()]);
  rmSync(work, { recursive: true, force: true });
});

describe("batched equals alone", () => {
  let alone: string[];

  test("greedy: eight concurrent requests each equal the request alone and airllm run; BOS alone is llama2.c's text", async () => {
    alone = [];
    for (const p of PROMPTS) alone.push((await complete(cached, { ...p, temperature: 0 })).choices[0].text);
    expect(alone[0]).toBe(storiesExpectedText());
    const together = await Promise.all(PROMPTS.map((p) => complete(cached, { ...p, temperature: 0 })));
    together.forEach((r, i) => {
      expect(r.choices[0].text).toBe(alone[i]!);
      expect(r.usage.completion_tokens).toBe(PROMPTS[i]!.max_tokens);
      expect(r.choices[0].finish_reason).toBe("length");
    });
    for (const i of [1, 2, 4]) {
      const cli = runCli(["run", STORIES_HF, "--device", "cpu", "-p", PROMPTS[i]!.prompt, "-n", String(PROMPTS[i]!.max_tokens), "--temp", "0"]);
      expect(cli.code).toBe(0);
      expect(cli.stdout).toBe(alone[i]! + "\n");
    }
  });

  test("seeded sampling: the same text concurrently, alone and from airllm run", async () => {
    const body = (i: number) => ({ ...PROMPTS[i]!, temperature: 0.9, top_k: 40, seed: 1000 + i });
    const solo: string[] = [];
    for (let i = 0; i < PROMPTS.length; i++) solo.push((await complete(cached, body(i))).choices[0].text);
    const together = await Promise.all(PROMPTS.map((_, i) => complete(cached, body(i))));
    together.forEach((r, i) => expect(r.choices[0].text).toBe(solo[i]));
    // Sampling does change the text (the check above would pass on greedy output too).
    expect(solo.filter((t, i) => t !== alone[i]).length).toBeGreaterThan(4);
    for (const i of [1, 3]) {
      const cli = runCli(["run", STORIES_HF, "--device", "cpu", "-p", PROMPTS[i]!.prompt, "-n", String(PROMPTS[i]!.max_tokens), "--temp", "0.9", "--top-k", "40", "--seed", String(1000 + i)]);
      expect(cli.stdout).toBe(solo[i] + "\n");
    }
  });

  test("speculate per request (an extension field: n-grams, context trees): greedy output unchanged; a draft without a draft model is a 400", async () => {
    const spec = await Promise.all(PROMPTS.slice(0, 4).map((p, i) => complete(cached, { ...p, temperature: 0, speculate: i % 2 === 0 ? "ngram" : "tree", draft_tokens: 6 })));
    spec.forEach((r, i) => expect(r.choices[0].text).toBe(alone[i]!));
    const bad = await postJson(`${cached.url}/v1/completions`, { prompt: "x", speculate: "draft" }, auth);
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toMatch(/needs a draft model/);
    const wrong = await postJson(`${cached.url}/v1/completions`, { prompt: "x", speculate: "maybe" }, auth);
    expect(wrong.status).toBe(400);
    expect(wrong.json.error.param).toBe("speculate");
  });

  test("n choices: seed + index each, the same as separate requests", async () => {
    const r = await complete(cached, { prompt: "The dog", max_tokens: 20, temperature: 1, n: 3, seed: 7 });
    expect(r.choices.map((c: any) => c.index)).toEqual([0, 1, 2]);
    for (let i = 0; i < 3; i++) {
      const one = await complete(cached, { prompt: "The dog", max_tokens: 20, temperature: 1, seed: 7 + i });
      expect(r.choices[i].text).toBe(one.choices[0].text);
    }
    expect(r.usage.completion_tokens).toBe(60);
  });
});

describe("the official openai package", () => {
  const client = () => new OpenAI({ baseURL: `${cached.url}/v1`, apiKey: KEY, maxRetries: 0 });

  test("models list", async () => {
    const list = await client().models.list();
    expect(list.data.map((m) => m.id)).toEqual([MODEL_ID]);
  });

  test("completions, streaming and not, with usage in the stream", async () => {
    const c = client();
    const whole = await c.completions.create({ model: MODEL_ID, prompt: "Once upon a time", max_tokens: 40, temperature: 0 });
    expect(whole.choices[0]!.finish_reason).toBe("length");
    expect(whole.usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 40, total_tokens: 45 });
    const stream = await c.completions.create({ model: MODEL_ID, prompt: "Once upon a time", max_tokens: 40, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = "";
    let usage = null;
    let finish = null;
    for await (const chunk of stream) {
      for (const ch of chunk.choices) {
        text += ch.text;
        finish = ch.finish_reason ?? finish;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(whole.choices[0]!.text);
    expect(finish).toBe("length");
    expect(usage).toMatchObject({ prompt_tokens: 5, completion_tokens: 40, total_tokens: 45 });
    // The same as llama2.c's reference continuation of BOS "Once upon a time"? That one starts at
    // BOS alone; here the request alone is the reference.
    const alone = await complete(cached, { prompt: "Once upon a time", max_tokens: 40, temperature: 0 });
    expect(text).toBe(alone.choices[0].text);
  });

  test("chat completions in the model's template, streaming and not, with logprobs", async () => {
    const c = client();
    const messages = [
      { role: "system" as const, content: "You tell short stories." },
      { role: "user" as const, content: "Tell me about a cat." },
    ];
    const whole = await c.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 30, temperature: 0, logprobs: true, top_logprobs: 2 });
    const choice = whole.choices[0]!;
    expect(choice.message.role).toBe("assistant");
    expect(choice.finish_reason).toBe("length");
    expect(whole.usage!.completion_tokens).toBe(30);
    const lp = choice.logprobs!.content!;
    expect(lp.length).toBe(30);
    expect(lp.map((t) => t.token).join("")).toBe(choice.message.content!);
    for (const t of lp) {
      expect(t.logprob).toBeLessThanOrEqual(0);
      // Greedy: the chosen token is the most likely one.
      expect(t.top_logprobs[0]!.logprob).toBeCloseTo(t.logprob, 5);
      expect(t.top_logprobs[1]!.logprob).toBeLessThanOrEqual(t.top_logprobs[0]!.logprob);
    }
    const stream = await c.chat.completions.create({ model: MODEL_ID, messages, max_tokens: 30, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = "";
    let role = null;
    let usage = null;
    for await (const chunk of stream) {
      for (const ch of chunk.choices) {
        text += ch.delta.content ?? "";
        role ??= ch.delta.role ?? null;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    expect(role).toBe("assistant");
    expect(text).toBe(choice.message.content!);
    expect(usage).toMatchObject({ completion_tokens: 30, prompt_tokens: whole.usage!.prompt_tokens });
    // The rendered conversation, sent as a completion, is the same request.
    const rendered = messages.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join("") + "<|im_start|>assistant\n";
    const raw = await complete(cached, { prompt: rendered, max_tokens: 30, temperature: 0 });
    expect(raw.choices[0].text).toBe(text);
  });

  test("a wrong key is refused with 401 in OpenAI's error shape", async () => {
    const bad = new OpenAI({ baseURL: `${cached.url}/v1`, apiKey: "wrong", maxRetries: 0 });
    const e: any = await bad.models.list().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.APIError);
    expect(e.status).toBe(401);
    const none = await fetch(`${cached.url}/v1/models`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as any).error).toMatchObject({ code: "invalid_api_key", type: "invalid_request_error" });
  });
});

describe("prefix reuse", () => {
  const ref = storiesRef();
  // 200 ids from llama2.c's reference sequence: BOS and its greedy continuation.
  const prefix = [1, ...ref.sequence_after_bos_prompt_then_greedy.slice(0, 199)];
  const a = [...prefix, 403, 407];
  const b = [...prefix, 261, 378, 300];

  test("a request sharing a 200-token prefix reports its whole pages cached, with the output of no caching", async () => {
    const first = await complete(cached, { prompt: a, max_tokens: 16, temperature: 0 });
    expect(first.usage.prompt_tokens).toBe(a.length);
    const second = await complete(cached, { prompt: b, max_tokens: 16, temperature: 0 });
    const wholePages = Math.floor(prefix.length / DEFAULT_PAGE_SIZE) * DEFAULT_PAGE_SIZE;
    expect(second.usage.prompt_tokens_details.cached_tokens).toBeGreaterThanOrEqual(wholePages);
    expect(second.usage.prompt_tokens_details.cached_tokens).toBeLessThan(b.length);
    const uncached = await complete(plain, { prompt: b, max_tokens: 16, temperature: 0 });
    expect(uncached.usage.prompt_tokens_details.cached_tokens).toBe(0);
    expect(second.choices[0].text).toBe(uncached.choices[0].text);
    const m = await metrics(cached.url);
    expect(m.get("airllm_prefix_cache_hit_tokens_total")!).toBeGreaterThanOrEqual(wholePages);
    expect(m.get("airllm_tokens_total{kind=\"cached\"}")!).toBeGreaterThanOrEqual(wholePages);
  });

  test("chat turn 2 finds turn 1 (prompt and reply) in the cache", async () => {
    const c = new OpenAI({ baseURL: `${cached.url}/v1`, apiKey: KEY, maxRetries: 0 });
    const turn1 = [{ role: "user" as const, content: "Once upon a time there was a frog named Fred who lived by a pond." }];
    const r1 = await c.chat.completions.create({ model: MODEL_ID, messages: turn1, max_tokens: 40, temperature: 0 });
    const turn2 = [...turn1, { role: "assistant" as const, content: r1.choices[0]!.message.content! }, { role: "user" as const, content: "What did Fred eat?" }];
    const r2 = await c.chat.completions.create({ model: MODEL_ID, messages: turn2, max_tokens: 20, temperature: 0 });
    const cachedTokens = r2.usage!.prompt_tokens_details!.cached_tokens!;
    expect(cachedTokens).toBeGreaterThanOrEqual(Math.floor(r1.usage!.prompt_tokens / DEFAULT_PAGE_SIZE) * DEFAULT_PAGE_SIZE);
    const uncached = await postJson(`${plain.url}/v1/completions`, {
      prompt: turn2.map((m) => `<|im_start|>${m.role}\n${m.content}<|im_end|>\n`).join("") + "<|im_start|>assistant\n",
      max_tokens: 20,
      temperature: 0,
    });
    expect(uncached.json.choices[0].text).toBe(r2.choices[0]!.message.content);
  });
});

describe("a dropped stream is harmless", () => {
  test("its pages return to the pool within a pass and the other streams finish unchanged", async () => {
    const prompts = ["The dog", "The bird", "The tree"];
    const body = (p: string) => ({ model: MODEL_ID, prompt: p, max_tokens: 400, temperature: 0 });
    const alone: string[] = [];
    for (const p of prompts) alone.push((await complete(plain, body(p))).choices[0].text);
    const base = await metrics(plain.url);
    const dropper = new AbortController();
    const streams = prompts.map((p, i) =>
      fetch(`${plain.url}/v1/completions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ...body(p), stream: true }), signal: i === 0 ? dropper.signal : undefined }),
    );
    // Read a few events of the first stream, then drop its connection.
    const first = await streams[0]!;
    const reader = first.body!.getReader();
    for (let i = 0; i < 3; i++) await reader.read();
    dropper.abort();
    const others = Promise.all(streams.slice(1).map(async (s) => (await readEvents(await s)).map((e) => e.choices[0]?.text ?? "").join("")));
    // Within a pass or so the dropped request is gone while the other two still run.
    let seen = false;
    for (let i = 0; i < 200 && !seen; i++) {
      const m = await metrics(plain.url);
      if (m.get("airllm_requests_in_flight") === 2) seen = true;
      else await Bun.sleep(2);
    }
    expect(seen).toBe(true);
    const texts = await others;
    expect(texts).toEqual(alone.slice(1));
    const after = await metrics(plain.url);
    expect(after.get("airllm_requests_in_flight")).toBe(0);
    expect(after.get("airllm_running_sequences")).toBe(0);
    // No prefix cache on this server: every page is free again.
    expect(after.get("airllm_kv_pages{state=\"free\"}")).toBe(base.get("airllm_kv_pages{state=\"free\"}")!);
    expect(after.get("airllm_kv_pages{state=\"used\"}")).toBe(0);
  });
});

describe("load", () => {
  test("64 concurrent requests against 8 running + 16 queued: the excess gets 429, every admitted one completes unmixed", async () => {
    const prompts = PROMPTS.slice(1).map((p) => p.prompt);
    const alone: string[] = [];
    for (const p of prompts) alone.push((await complete(plain, { prompt: p, max_tokens: 150, temperature: 0 })).choices[0].text);
    const results = await Promise.all(
      Array.from({ length: 64 }, (_, i) => postJson(`${plain.url}/v1/completions`, { model: MODEL_ID, prompt: prompts[i % prompts.length], max_tokens: 150, temperature: 0 })),
    );
    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status === 429);
    expect(ok.length + refused.length).toBe(64);
    expect(ok.length).toBeGreaterThanOrEqual(24);
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) expect(r.json.error).toMatchObject({ type: "rate_limit_error", code: "rate_limit_exceeded" });
    results.forEach((r, i) => {
      if (r.status === 200) expect(r.json.choices[0].text).toBe(alone[i % prompts.length]!);
    });
    const m = await metrics(plain.url);
    expect(m.get("airllm_requests_total{endpoint=\"/v1/completions\",status=\"429\"}")).toBe(refused.length);
  });
});

describe("bad requests keep the server serving", () => {
  const url = () => `${plain.url}/v1/completions`;
  const raw = async (body: string, path = "/v1/completions") => {
    const res = await fetch(`${plain.url}${path}`, { method: "POST", headers: { "content-type": "application/json" }, body });
    return { status: res.status, json: (await res.json()) as any };
  };

  test.each([
    ["malformed JSON", () => raw("{\"prompt\": \"x\","), 400, "body"],
    ["a wrong type", () => postJson(url(), { prompt: "x", max_tokens: "ten" }), 400, "max_tokens"],
    ["negative max_tokens", () => postJson(url(), { prompt: "x", max_tokens: -1 }), 400, "max_tokens"],
    ["temperature out of range", () => postJson(url(), { prompt: "x", temperature: 5 }), 400, "temperature"],
    ["no prompt", () => postJson(url(), { max_tokens: 3 }), 400, "prompt"],
    ["messages not a list", () => postJson(`${plain.url}/v1/chat/completions`, { messages: "hi" }), 400, "messages"],
    ["an unknown model", () => postJson(url(), { model: "gpt-17", prompt: "x" }), 404, "model"],
    ["a prompt longer than the context", () => postJson(url(), { prompt: Array.from({ length: 600 }, () => 300) }), 413, "prompt"],
    ["an unknown route", () => raw("{}", "/v1/embeddings"), 404, null],
  ] as const)("%s", async (_, send, status, param) => {
    const r = await send();
    expect(r.status).toBe(status);
    expect(typeof r.json.error.message).toBe("string");
    expect(r.json.error.param).toBe(param);
    // ...and the server still answers.
    const ok = await complete(plain, { prompt: "Once upon a time", max_tokens: 3, temperature: 0 }, {});
    expect(ok.choices[0].text.length).toBeGreaterThan(0);
  });

  test("an oversized body is a 413 before it is all read", async () => {
    const big = JSON.stringify({ prompt: "x".repeat(9 * 1024 * 1024) });
    const r = await raw(big);
    expect(r.status).toBe(413);
    expect(r.json.error.code).toBe("request_too_large");
  });

  test("chat on a model with no chat template names the fix", async () => {
    const r = await postJson(`${plain.url}/v1/chat/completions`, { messages: [{ role: "user", content: "hi" }] });
    expect(r.status).toBe(400);
    expect(r.json.error.code).toBe("no_chat_template");
  });
});

describe("shutdown", () => {
  test("SIGTERM lets the in-flight request finish, then exits 0", async () => {
    const s = await startServer(binary, [STORIES_HF, "--device", "cpu", "--ctx", "512", "--threads", "1"]);
    const pending = postJson(`${s.url}/v1/completions`, { prompt: "", max_tokens: 200, temperature: 0 });
    await Bun.sleep(20);
    s.proc.kill("SIGTERM");
    const r = await pending;
    expect(r.status).toBe(200);
    expect(r.json.choices[0].text).toBe(storiesExpectedText());
    expect(await s.proc.exited).toBe(0);
    expect(s.stderr()).toMatch(/SIGTERM: no new requests/);
  });

  test("a model that cannot load under its budget: the error and its hint on stderr, exit 1", async () => {
    const p = Bun.spawn([binary, "serve", STORIES_HF, "--device", "cpu", "--port", "0", "--max-memory", "1KiB"], { stdout: "ignore", stderr: "pipe" });
    expect(await p.exited).toBe(1);
    const err = await new Response(p.stderr).text();
    expect(err).toMatch(/^airllm: listening on http:\/\/127\.0\.0\.1:\d+/m);
    expect(err).toMatch(/^airllm: error: the memory budget of 1\.0 KiB cannot hold/m);
    expect(err).toMatch(/^hint: /m);
  });
});
