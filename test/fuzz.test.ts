// The fuzz suite's fixed sample (test/fuzz/): a few hundred seeded mutations of every input the
// binary reads, run through dist/airllm. A correct binary answers each with a clear error or, for
// a valid input, success; anything else (a crash, a hang, memory past 200 MiB, success on broken
// input, a refused valid input, an error without its hint) fails the test with the case's id, which
// `bun run fuzz --only ID` reruns alone. `bun run fuzz --cases N` is the long mode.
import { describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "./paths.ts";
import { GOOD } from "./fuzz/classify.ts";
import { ENV_CASE_COUNT, envCase } from "./fuzz/env-cases.ts";
import { DEFAULT_LIMITS, runMany, type Outcome } from "./fuzz/run-case.ts";
import { FAMILIES, makeCase } from "./fuzz/suite.ts";

const BINARY = join(ROOT, "dist/airllm");
const SEED = 17;
const SAMPLE = 300;

function failures(outcomes: readonly Outcome[]): string[] {
  return outcomes.filter((o) => !GOOD.has(o.cls)).map((o) => `${o.cls} ${o.id} (${o.what}): ${o.reason} ${o.errorLine}`);
}

describe("fuzz: dist/airllm on mutated inputs", () => {
  test(`${SAMPLE} seeded cases: each a clear error or an accepted valid input, huge counts under 200 MiB`, async () => {
    if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: run \`bun run build\` first (the test command does)`);
    const cases = Array.from({ length: SAMPLE }, (_, i) => makeCase(SEED, i));
    const outcomes = await runMany(cases, BINARY, 2);
    expect(failures(outcomes)).toEqual([]);
    // The sample exercises every family, refusals and acceptances both, and the huge counts.
    for (const f of FAMILIES) expect(outcomes.some((o) => o.family === f.name)).toBe(true);
    expect(outcomes.filter((o) => o.cls === "clear-error").length).toBeGreaterThan(SAMPLE / 2);
    expect(outcomes.filter((o) => o.cls === "accepted").length).toBeGreaterThan(20);
    const huge = outcomes.filter((o) => o.hugeCount);
    expect(huge.length).toBeGreaterThan(10);
    for (const o of huge) expect(o.peakRss).toBeLessThan(DEFAULT_LIMITS.rssLimit);
  }, 120_000);

  test("every environment case once: output failures, closed streams, FIFOs, links, damaged splits", async () => {
    const cases = Array.from({ length: ENV_CASE_COUNT }, (_, i) => ({ id: `env/${i}`, family: "environment", ...envCase(i) }));
    expect(failures(await runMany(cases, BINARY, 2))).toEqual([]);
  }, 120_000);
});
