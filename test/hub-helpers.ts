// What the hub tests share: the binary run asynchronously (the loopback hub lives in the test's
// own process, so a blocking spawn would starve it), the stories repo as the hub serves it, and a
// check that a cache is consistent (every snapshot link resolves to a complete, correct blob).
import { copyFileSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { expect } from "bun:test";
import type { HubServer } from "./hub-server.ts";
import { ROOT, SHARED, STORIES_HF } from "./paths.ts";
import { storiesExpectedText } from "./stories-reference.ts";

export const STORIES_REPO = "karpathy/stories260K";
/** The files running stories260K needs, as the hub tests expect them downloaded. */
export const STORIES_FILES = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"];

/** stories260K as a hub repo, with files a pull must leave alone (a README, an original/ copy). */
export function storiesRepoFiles(): Record<string, string> {
  return {
    ...Object.fromEntries(STORIES_FILES.map((f) => [f, join(STORIES_HF, f)])),
    "README.md": join(SHARED, "models/stories260K/llama2c_doc_stories260K.md"),
    "original/stories260K.bin": join(SHARED, "models/stories260K/stories260K.bin"),
  };
}

/** A copy of dist/airllm in a fresh folder (it needs nothing beside it). */
export function binaryCopy(prefix: string): { work: string; binary: string } {
  const built = join(ROOT, "dist/airllm");
  if (!existsSync(built)) throw new Error(`${built} is missing: run \`bun run build\` first (the test command does)`);
  const work = mkdtempSync(join(tmpdir(), prefix));
  const binary = join(work, "airllm");
  copyFileSync(built, binary);
  Bun.spawnSync(["chmod", "+x", binary]);
  return { work, binary };
}

export interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** The environment of a run: no token or cache of this machine's user leaks in. */
export function hubEnv(vars: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("HF_") && k !== "HUGGINGFACE_HUB_CACHE") env[k] = v;
  return { ...env, AIRLLM_DEBUG: "", ...vars };
}

export async function run(command: string[], env: Record<string, string>, cwd?: string): Promise<Run> {
  const p = Bun.spawn(command, { cwd, env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

/** `run ORG/NAME` of stories260K with HF_HUB_OFFLINE=1: llama2.c's text, and not one request to `server`. */
export async function expectStoriesRunsOffline(airllm: (args: string[], vars: Record<string, string>) => Promise<Run>, server: HubServer): Promise<void> {
  const before = server.log.length;
  const r = await airllm(["run", STORIES_REPO, "-p", "", "-n", "200", "--device", "cpu"], { HF_HUB_OFFLINE: "1" });
  expect(r.stderr).toMatch(/finish: length/);
  expect(r.code).toBe(0);
  expect(r.stdout).toBe(storiesExpectedText() + "\n");
  expect(server.log.length).toBe(before);
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)]));
}

/**
 * Asserts the cache is consistent: every snapshot entry is a relative symlink into blobs/ whose
 * blob exists and has the content of `sources[path]`. Returns the repo paths linked.
 */
export function expectConsistentSnapshot(snapshot: string, sources: Record<string, string>): string[] {
  const linked: string[] = [];
  for (const link of walk(snapshot)) {
    const path = link.slice(snapshot.length + 1);
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    const target = readlinkSync(link);
    expect(target.startsWith("../")).toBe(true);
    const blob = resolve(dirname(link), target);
    expect(dirname(blob)).toBe(resolve(snapshot, "../../blobs"));
    expect(existsSync(blob)).toBe(true);
    expect(Buffer.compare(readFileSync(blob), readFileSync(sources[path]))).toBe(0);
    linked.push(path);
  }
  return linked.sort();
}
