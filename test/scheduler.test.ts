// The scheduler, prefix cache and chat session in the library (stories260K on the CPU): batched
// and preempted requests equal the request alone, copy-on-write keeps a shared page intact,
// cached prefixes give the uncached output, a cancelled request's pages go back, and a chat turn
// feeds only its new tokens. The reference for each is the same request run alone, uncached.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { generateStream } from "../src/engine/generate.ts";
import { Scheduler } from "../src/engine/scheduler.ts";
import { AutoModel, type CausalLM } from "../src/index.ts";
import { STORIES_HF } from "./paths.ts";
import { storiesExpectedText, storiesRef } from "./stories-reference.ts";

// ChatML after BOS, written here: stories260K ships no chat template.
const CHATML = "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
const PROMPTS = ["Once upon a time", "The cat sat", "Tom and Lily went to the park. They", "One day", "The sun was hot and"];

let model: CausalLM;
let uncached: CausalLM;
let templateFile: string;

beforeAll(async () => {
  templateFile = `${process.env.TMPDIR ?? "/tmp"}/airllm-scheduler-chatml-${process.pid}.jinja`;
  await Bun.write(templateFile, CHATML);
  model = await AutoModel.from_pretrained(STORIES_HF, { device: "cpu", max_seq_len: 512, parallel: 4, chat_template: templateFile });
  uncached = await AutoModel.from_pretrained(STORIES_HF, { device: "cpu", max_seq_len: 512, parallel: 4, prefix_cache: false, chat_template: templateFile });
});
afterAll(() => {
  model?.dispose();
  uncached?.dispose();
});

describe("continuous batching", () => {
  test("concurrent streams get each pass's token before the next pass runs, not in bursts", async () => {
    // Each stream records the scheduler's pass count as each token arrives: token k of every
    // stream comes after one more pass than token k - 1 (the first after the prefill passes).
    const arrivals = await Promise.all(
      PROMPTS.slice(0, 4).map(async (p) => {
        const seen: number[] = [];
        for await (const _ of model.stream(p, { maxNewTokens: 12 })) seen.push(model.scheduler.stats().passes);
        return seen;
      }),
    );
    for (const seen of arrivals) {
      expect(seen.length).toBe(12);
      for (let k = 1; k < seen.length; k++) expect(seen[k]! - seen[k - 1]!).toBe(1);
    }
  });

  test("concurrent generate() calls share passes and each equals its call alone", async () => {
    const alone = [];
    for (const p of PROMPTS) alone.push((await uncached.generate(p, { maxNewTokens: 30 })).text);
    const passesBefore = model.scheduler.stats().passes;
    const together = await Promise.all(PROMPTS.map((p) => model.generate(p, { maxNewTokens: 30 })));
    expect(together.map((r) => r.text)).toEqual(alone);
    // Five requests of 30 tokens in far fewer than 5 × 31 passes.
    expect(model.scheduler.stats().passes - passesBefore).toBeLessThan(2 * 31);
  });

  test("BOS alone, batched with others, still gives llama2.c's expected text", async () => {
    const [bos] = await Promise.all([model.generate([1], { maxNewTokens: 200 }), ...PROMPTS.map((p) => model.generate(p, { maxNewTokens: 50 }))]);
    expect(bos!.text).toBe(storiesExpectedText());
  });

  test("when pages run out, the latest request is preempted and recomputed: outputs unchanged", async () => {
    // A pool of 4 pages of 16 tokens, and a scheduler that runs 3 requests at once: each grows to
    // 45 tokens (3 pages), so they cannot all keep their pages.
    const small = await AutoModel.from_pretrained(STORIES_HF, { device: "cpu", max_seq_len: 64, parallel: 1, prefix_cache: false });
    try {
      expect(small.engine.kvPool.shape.pages).toBe(4);
      const three = new Scheduler(small.engine, () => small.tokenizer, { maxRunning: 3, prefixCache: false });
      const requests = PROMPTS.slice(0, 3).map((p) => small.request(small.encodePrompt(p), { maxNewTokens: 40 }));
      const alone = [];
      for (const r of requests) alone.push((await drain(generateStream(small.scheduler, r))).tokens);
      const together = await Promise.all(requests.map((r) => drain(generateStream(three, r))));
      expect(together.map((r) => r.tokens)).toEqual(alone);
      expect(three.stats().preemptions).toBeGreaterThan(0);
      expect(small.engine.kvPool.freePages).toBe(4);
    } finally {
      small.dispose();
    }
  });

  test("a cancelled request leaves within a pass and gives its pages back", async () => {
    const free = uncached.engine.kvPool.freePages;
    const ac = new AbortController();
    const other = uncached.generate("The dog", { maxNewTokens: 100 });
    const it = uncached.stream("The bird", { maxNewTokens: 400, signal: ac.signal });
    let n = 0;
    for (;;) {
      const r = await it.next();
      if (r.done) {
        expect(r.value.finishReason).toBe("abort");
        break;
      }
      if (++n === 5) ac.abort();
    }
    expect(n).toBeLessThanOrEqual(6);
    const alone = await uncached.generate("The dog", { maxNewTokens: 100 });
    expect((await other).text).toBe(alone.text);
    expect(uncached.engine.kvPool.freePages).toBe(free);
  });
});

describe("prefix cache", () => {
  const ref = storiesRef().sequence_after_bos_prompt_then_greedy;
  const prefix = [1, ...ref.slice(0, 99)];

  test("a shared 100-token prefix is found as whole pages; outputs equal no caching", async () => {
    const page = model.engine.kvPool.shape.pageSize;
    await model.generate([...prefix, 403], { maxNewTokens: 8 });
    const hit = await model.generate([...prefix, 261, 378], { maxNewTokens: 20 });
    expect(hit.cachedTokens).toBe(Math.floor(prefix.length / page) * page);
    const miss = await uncached.generate([...prefix, 261, 378], { maxNewTokens: 20 });
    expect(miss.cachedTokens).toBe(0);
    expect(hit.tokens).toEqual(miss.tokens);
  });

  test("copy on write: a fork that writes into a shared page leaves the original's KV intact", () => {
    const e = uncached.engine;
    const tokens = ref.slice(0, 20);
    const a = e.newSequence();
    e.forward([a], [[1, ...tokens]]);
    const b = a.fork();
    expect(b.pageIds).toEqual(a.pageIds);
    // b writes position 21 into the shared, partly filled second page: it gets its own copy.
    const fromB = e.forward([b], [[300]])[0]!;
    expect(b.pageIds[1]).not.toBe(a.pageIds[1]);
    const fromA = e.forward([a], [[400]])[0]!;
    // References: the same steps on sequences of their own.
    const refA = e.newSequence();
    e.forward([refA], [[1, ...tokens]]);
    const expectA = e.forward([refA], [[400]])[0]!;
    const refB = e.newSequence();
    e.forward([refB], [[1, ...tokens]]);
    const expectB = e.forward([refB], [[300]])[0]!;
    expect(fromA).toEqual(expectA);
    expect(fromB).toEqual(expectB);
    for (const s of [a, b, refA, refB]) s.dispose();
  });
});

describe("chat", () => {
  const turn1 = [{ role: "user", content: "Once upon a time there was a frog." }];

  test("applyChatTemplate renders the conversation with or without the assistant opening", () => {
    expect(model.applyChatTemplate(turn1)).toBe("<s><|im_start|>user\nOnce upon a time there was a frog.<|im_end|>\n<|im_start|>assistant\n");
    expect(model.applyChatTemplate(turn1, { addGenerationPrompt: false })).toBe("<s><|im_start|>user\nOnce upon a time there was a frog.<|im_end|>\n");
  });

  test("model.chat() equals generating from the rendered text; chatStream() streams the same", async () => {
    const whole = await model.chat(turn1, { maxNewTokens: 25 });
    // The template writes BOS itself: the text is tokenized without adding another, as transformers does.
    const ids = uncached.tokenizer.encode(uncached.applyChatTemplate(turn1), { addBos: false });
    expect(ids.filter((t) => t === 1).length).toBe(1);
    const raw = await uncached.generate(ids, { maxNewTokens: 25 });
    expect(whole.text).toBe(raw.text);
    let streamed = "";
    for await (const c of model.chatStream(turn1, { maxNewTokens: 25 })) streamed += c.text;
    expect(streamed).toBe(whole.text);
  });

  test("a ChatSession's second turn feeds only its new tokens and replies as a fresh conversation would", async () => {
    const chat = model.newChat("You tell stories.");
    let r = await drain(chat.send("Tell me about a frog.", { maxNewTokens: 20 }));
    const firstPrompt = r.promptTokens.length;
    expect(chat.lastCachedTokens).toBe(0);
    r = await drain(chat.send("What did it eat?", { maxNewTokens: 20 }));
    expect(chat.lastCachedTokens).toBeGreaterThanOrEqual(firstPrompt);
    const fresh = await uncached.chat(chat.messages.slice(0, -1), { maxNewTokens: 20 });
    expect(r.text).toBe(fresh.text);
    chat.reset();
    expect(chat.messages.length).toBe(1);
    r = await drain(chat.send("Tell me about a frog.", { maxNewTokens: 20 }));
    expect(chat.lastCachedTokens).toBe(0);
    chat.dispose();
  });
});

async function drain<T, R>(it: AsyncGenerator<T, R>): Promise<R> {
  for (;;) {
    const r = await it.next();
    if (r.done) return r.value;
  }
}
