// `bun run fuzz --cases N [--seed S] [--jobs J] [--only ID] [--binary PATH]`: the long mode of the
// fuzz suite against dist/airllm (or another build, to compare). Prints the report (test/FUZZ.md records one) and exits 1 when any case
// falls outside "clear error" and "accepted". `--only 7/123` reruns one case of a run; `--list`
// prints every case's class and error line.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../paths.ts";
import { GOOD } from "./classify.ts";
import { report } from "./report.ts";
import { runMany } from "./run-case.ts";
import { makeCase } from "./suite.ts";

function flag(name: string, fallback: number): number {
  const at = process.argv.indexOf(`--${name}`);
  if (at < 0) return fallback;
  const v = Number(process.argv[at + 1]);
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`--${name} needs a non-negative integer`);
  return v;
}

const binary = process.argv.includes("--binary") ? process.argv[process.argv.indexOf("--binary") + 1]! : join(ROOT, "dist/airllm");
if (!existsSync(binary)) throw new Error(`${binary} is missing: run \`bun run build\` first`);
const only = process.argv.includes("--only") ? process.argv[process.argv.indexOf("--only") + 1]!.split("/").map(Number) : null;
const seed = only ? only[0]! : flag("seed", 1);
const first = only ? only[1]! : flag("from", 0);
const count = only ? 1 : flag("cases", 300);
const jobs = Math.max(1, flag("jobs", 2));
const list = process.argv.includes("--list");

const t0 = performance.now();
const cases = Array.from({ length: count }, (_, i) => makeCase(seed, first + i));
const outcomes = await runMany(cases, binary, jobs, (o, done) => {
  if (!GOOD.has(o.cls) || only || list) process.stderr.write(`${o.cls} ${o.id} ${o.what}: ${o.reason} ${o.errorLine.slice(0, 200)}\n`);
  if (done % 100 === 0) process.stderr.write(`fuzz: ${done}/${count}\n`);
});
process.stdout.write(report(outcomes, seed, (performance.now() - t0) / 1000) + "\n");
process.exit(outcomes.every((o) => GOOD.has(o.cls)) ? 0 : 1);
