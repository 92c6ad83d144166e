// A model in its own Worker: same output as in-thread, and the caller's event loop keeps running
// while tokens are computed (what a server needs; the CUDA backend's waits happen there too).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { UsageError, WorkerModel } from "../src/index.ts";
import { STORIES_HF } from "./paths.ts";
import { storiesExpectedText } from "./stories-reference.ts";

describe("WorkerModel", () => {
  let model: WorkerModel;
  beforeAll(async () => {
    model = await WorkerModel.load(STORIES_HF, { device: "cpu" });
  });
  afterAll(() => model.dispose());

  test("greedy 200 tokens equal llama2.c's expected text, while this thread's timers keep firing", async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    let chunks = 0;
    let text = "";
    const it = model.stream([1], { maxNewTokens: 200 });
    let result;
    for (;;) {
      const r = await it.next();
      if (r.done) {
        result = r.value;
        break;
      }
      chunks++;
      text += r.value.text;
    }
    clearInterval(timer);
    expect(text).toBe(storiesExpectedText());
    expect(result.text).toBe(storiesExpectedText());
    expect(chunks).toBe(200);
    expect(ticks).toBeGreaterThan(0);
  });

  test("an AbortSignal stops generation in the worker", async () => {
    const ac = new AbortController();
    const it = model.stream([1], { maxNewTokens: 200, signal: ac.signal });
    let n = 0;
    let result;
    for (;;) {
      const r = await it.next();
      if (r.done) {
        result = r.value;
        break;
      }
      if (++n === 3) ac.abort();
    }
    expect(result.finishReason).toBe("abort");
    expect(result.tokens.length).toBeLessThan(200);
  });

  test("errors cross the thread boundary with their class and hint", async () => {
    const err = await model.generate([1], { maxNewTokens: 1, temperature: -1 }).catch((e) => e);
    expect(err).toBeInstanceOf(UsageError);
    expect(err.hint).toBeTruthy();
    const bad = await WorkerModel.load("/nonexistent/model").catch((e) => e);
    expect(bad.message).toMatch(/nonexistent/);
  });
});
