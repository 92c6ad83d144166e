// `airllm selftest`: on a machine with an NVIDIA GPU, checks the driver bindings, compares every
// CUDA op with the CPU backend (the reference) and measures host→device bandwidth. Prints a table,
// or one JSON object with --json; exits 1 when any op is out of tolerance.
import { createCpuBackend } from "../backend/cpu/cpu-backend.ts";
import { measureH2D } from "../backend/cuda/bandwidth.ts";
import { createCudaBackend } from "../backend/cuda/cuda-backend.ts";
import { probeCuda } from "../backend/cuda/detect.ts";
import { runOpSelftest } from "../backend/cuda/op-selftest.ts";
import { UsageError } from "../errors.ts";
import { Flags, flagHelp, parseArgs, type FlagSpec } from "./args.ts";

const FLAGS: readonly FlagSpec[] = [
  { name: "json", help: "print one JSON object on stdout" },
  { name: "bandwidth-bytes", value: "SIZE_MB", help: "size of each host→device copy in MB (default 256)" },
  { name: "help", short: "h", help: "show this help" },
];

export const SELFTEST_HELP = `usage: airllm selftest [options]

Checks the CUDA backend on this machine: driver bindings, every op against the CPU backend,
and host→device bandwidth from pinned and pageable memory.

options:
${flagHelp(FLAGS)}
`;

export async function selftestCommand(argv: readonly string[], out: (s: string) => void): Promise<number> {
  const f = new Flags(parseArgs(argv, FLAGS, "selftest"));
  if (f.has("help")) {
    out(SELFTEST_HELP);
    return 0;
  }
  const probe = probeCuda();
  if (!probe.ok) throw new UsageError(`no usable CUDA GPU: ${probe.reason}`, "run selftest on a machine with an NVIDIA GPU and driver");
  // The CUDA kernels multiply f32 activations: compare with the CPU's exact-activation path, not
  // its default int8 one (GGUF and 4bit/8bit weights), which rounds x.
  const cpu = createCpuBackend({ exactActivations: true });
  const gpu = createCudaBackend();
  let checks;
  try {
    checks = runOpSelftest(cpu, gpu);
  } finally {
    gpu.destroy();
    cpu.destroy();
  }
  const mb = f.number("bandwidth-bytes") ?? 256;
  const bw = measureH2D(Math.round(mb * 1e6));
  const failed = checks.filter((c) => !c.pass);
  if (f.has("json")) {
    out(JSON.stringify({ device: probe, ops: checks, h2d: bw, failed: failed.length }) + "\n");
  } else {
    out(`${probe.deviceName} (sm_${probe.computeCapability.replace(".", "")}, ${(probe.totalMem / 2 ** 30).toFixed(1)} GiB)\n`);
    for (const c of checks) {
      out(`${c.pass ? "ok  " : "FAIL"} ${c.op.padEnd(12)} ${c.dtype.padEnd(5)} ${c.shape.padEnd(28)} max abs ${c.maxAbsErr.toExponential(2)} rel ${c.maxRelErr.toExponential(2)} (tol ${c.tol.toExponential(1)})\n`);
    }
    out(`host→device: pinned ${bw.pinnedGBs.toFixed(1)} GB/s, pageable ${bw.pageableGBs.toFixed(1)} GB/s (${bw.bytes / 1e6} MB copies, ${bw.timer} timer)\n`);
    out(`${checks.length - failed.length}/${checks.length} ops within tolerance\n`);
  }
  return failed.length === 0 ? 0 : 1;
}
