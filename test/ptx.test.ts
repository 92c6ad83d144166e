// The CUDA kernels' PTX, checked without a GPU: ptxas (from PyPI's nvidia-cuda-nvcc, installed
// by scripts/tools.sh) must assemble it for sm_80 (A100, the target) and sm_90 (H100, reached
// by JIT) with no local-memory spills or stack, and the PTX must define exactly the kernels
// src/backend/cuda/module.ts launches, with the parameter types its table says.
import { describe, expect, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { KERNELS, KERNEL_NAMES, type ArgKind } from "../src/backend/cuda/module.ts";
import { ROOT } from "./paths.ts";

const PTX_PATH = resolve(ROOT, "zig-out/ptx/airllm.ptx");
const PTXAS = process.env.AIRLLM_PTXAS ?? resolve(ROOT, ".tools/nvcc/bin/ptxas");

function requireFile(path: string, what: string, fix: string): void {
  if (!existsSync(path)) throw new Error(`${what} not found at ${path}: ${fix}`);
}

/** .entry name → its parameter types (".u64", ".u32", ".f32"), in order. */
function entries(ptx: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of ptx.matchAll(/\.visible \.entry (\w+)\(([^)]*)\)/g)) {
    out.set(m[1], [...m[2].matchAll(/\.param (\.\w+)/g)].map((p) => p[1]));
  }
  return out;
}

const PARAM_TYPE: Record<ArgKind, string> = { ptr: ".u64", u32: ".u32", f32: ".f32" };

describe("PTX of the CUDA kernels", () => {
  test("was built by zig build", () => {
    requireFile(PTX_PATH, "zig-out/ptx/airllm.ptx", "run `zig build -Doptimize=ReleaseFast`");
    expect(readFileSync(PTX_PATH, "utf8")).toContain(".target sm_80");
  });

  test("defines exactly the kernels module.ts launches, with the same parameters", () => {
    const found = entries(readFileSync(PTX_PATH, "utf8"));
    expect([...found.keys()].sort()).toEqual([...KERNEL_NAMES].sort());
    for (const name of KERNEL_NAMES) {
      expect({ name, params: found.get(name) }).toEqual({ name, params: KERNELS[name].map((k) => PARAM_TYPE[k]) });
    }
  });

  for (const arch of ["sm_80", "sm_90"]) {
    // ptxas takes several seconds over the whole module, beyond bun's default 5 s per test.
    test(`assembles with ptxas -arch=${arch}, no spills, no stack`, { timeout: 120_000 }, () => {
      requireFile(PTXAS, "ptxas", "run scripts/tools.sh (it installs nvidia-cuda-nvcc into .tools/nvcc) or set AIRLLM_PTXAS");
      const r = Bun.spawnSync([PTXAS, `-arch=${arch}`, "-v", PTX_PATH, "-o", "/dev/null"]);
      const log = r.stdout.toString() + r.stderr.toString();
      expect({ exitCode: r.exitCode, log: r.exitCode === 0 ? "" : log }).toEqual({ exitCode: 0, log: "" });
      const compiled = [...log.matchAll(/Compiling entry function '(\w+)'/g)].map((m) => m[1]);
      expect(compiled.sort()).toEqual([...KERNEL_NAMES].sort());
      const frames = [...log.matchAll(/(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads/g)];
      expect(frames.length).toBe(KERNEL_NAMES.length);
      for (const f of frames) expect([f[1], f[2], f[3]]).toEqual(["0", "0", "0"]);
    });
  }
});
