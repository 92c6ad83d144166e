// The architecture boundary: the engine (runner, streamer, planner, KV pool) never imports an
// architecture, and outside src/model/arch/ only the registry (arch/index.ts) is imported, so adding
// an architecture is one file and one row, and nothing else can come to depend on a particular one.
import { expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { ROOT } from "./paths.ts";

const SRC = resolve(ROOT, "src");

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** Every import specifier of a file, resolved to a path relative to src/. */
function imports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/(?:import|export)[^"']*?from\s+["']([^"']+)["']/g)]
    .map((m) => m[1]!)
    .filter((s) => s.startsWith("."))
    .map((s) => relative(SRC, resolve(file, "..", s)));
}

test("src/engine/ imports nothing under src/model/arch/", () => {
  const offenders = tsFiles(join(SRC, "engine")).flatMap((f) => imports(f).filter((i) => i.startsWith("model/arch/")).map((i) => `${relative(SRC, f)} -> ${i}`));
  expect(offenders).toEqual([]);
  // The check sees the engine's imports at all.
  expect(imports(join(SRC, "engine/engine.ts"))).toContain("model/architecture.ts");
});

test("outside src/model/arch/, only the registry is imported", () => {
  const outside = tsFiles(SRC).filter((f) => !relative(SRC, f).startsWith("model/arch/"));
  const offenders = outside.flatMap((f) => imports(f).filter((i) => i.startsWith("model/arch/") && i !== "model/arch/index.ts").map((i) => `${relative(SRC, f)} -> ${i}`));
  expect(offenders).toEqual([]);
});
