// `airllm plan MODEL`: the memory plan for a budget — bytes per tier, the ring, the KV pool, the
// largest context that fits and the predicted time per token — from config.json and the tensor
// headers alone: no weights read, nothing written, no GPU needed (--device cuda plans for a device
// of the given budget).
import { freemem } from "node:os";
import { probeCuda } from "../backend/cuda/detect.ts";
import { DEFAULT_PAGE_SIZE } from "../engine/kv/kv-pool.ts";
import { AirLLMError, UsageError } from "../errors.ts";
import { buildArchitecture } from "../model/arch/index.ts";
import { planLoad, type DeviceKind } from "../model/load-plan.ts";
import { inspectModelSource, type ModelSource } from "../model/model-source.ts";
import { parseCompression } from "../split/split-model.ts";
import { formatBytes } from "../util/size.ts";
import { Flags, flagHelp, parseArgs, type FlagSpec } from "./args.ts";
import { parseDevice, parseKvDtype } from "./model-flags.ts";
import { HUB_FLAGS } from "./hub-flags.ts";
import { hubPlanSource, resolveModelArg } from "./hub-resolve.ts";
import { decodeBytesPerToken, planJson, planLines, predictedMsPerToken } from "./plan-report.ts";

/** How to plan: device, budgets, context, compression (also the fit check's, in airllm pull). */
export const PLAN_BUDGET_FLAGS: readonly FlagSpec[] = [
  { name: "device", value: "D", help: "plan for cuda or cpu (default: cuda with --max-gpu-memory or a GPU here, else cpu)" },
  { name: "max-gpu-memory", value: "SIZE", help: "device memory budget (default: the GPU's total memory less 256 MiB)" },
  { name: "max-memory", value: "SIZE", help: "CPU: RAM budget (default: the available RAM)" },
  { name: "max-host-cache", value: "SIZE", help: "CUDA: pinned host RAM for streamed weights (default: half the free RAM)" },
  { name: "ctx", value: "N", help: "context to plan for (default: min(max_position_embeddings, 4096), shrunk to fit)" },
  { name: "compression", value: "4bit|8bit", help: "plan for AirLLM's compressed split (sizes from the shapes; the split is not made)" },
  { name: "kv-dtype", value: "T", help: "KV cache element type: f16 (default), bf16 or f32" },
  { name: "prefetch", value: "N", help: "chunks fetched ahead (default 1)" },
  { name: "no-prefetch", help: "no read-ahead" },
  { name: "chunk-size", value: "SIZE", help: "streaming slot size instead of the planner's choice" },
  { name: "expert-cache", value: "SIZE", help: "memory for the MoE expert cache instead of the default" },
];

const FLAGS: readonly FlagSpec[] = [
  ...PLAN_BUDGET_FLAGS,
  { name: "json", help: "print one JSON object on stdout" },
  ...HUB_FLAGS,
  { name: "help", short: "h", help: "show this help" },
];

export const PLAN_HELP = `usage: airllm plan MODEL [options]

Prints how MODEL would be placed in memory under a budget: bytes resident, cached in pinned host
RAM and read from disk per pass, the streaming ring, the KV pool, the largest context that fits and
the predicted time per token. Reads only config.json and the tensor headers; writes nothing. A hub
id (ORG/NAME) not in the cache is planned from its headers read remotely: only its config and
tokenizer files are downloaded.

options:
${flagHelp(FLAGS)}
`;

const DEVICE_MARGIN = 256 * 2 ** 20;
const DEFAULT_MAX_SEQ = 4096;

export async function planCommand(argv: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const parsed = parseArgs(argv, FLAGS, "plan");
  const f = new Flags(parsed);
  if (f.has("help")) {
    out(PLAN_HELP);
    return 0;
  }
  if (parsed.positionals.length !== 1) throw new UsageError("expected one model", "airllm plan MODEL --device cuda --max-gpu-memory 4GiB");
  const compression = parseCompression(f.string("compression"));
  // The flags are checked before anything is read or downloaded.
  chooseDevice(f);
  parseKvDtype(f.string("kv-dtype"));
  const source = (await hubPlanSource(parsed.positionals[0]!, f, err, compression)) ?? inspectModelSource(await resolveModelArg(parsed.positionals[0]!, f, err), compression);
  try {
    const plan = describePlan(source, f);
    out(f.has("json") ? JSON.stringify(plan.json) + "\n" : plan.lines.map((l) => `${l}\n`).join(""));
    return plan.fits ? 0 : 1;
  } finally {
    source.close();
  }
}

/** What planning needs of a model: its config and tensor headers (a local folder or remote headers). */
export type PlanSource = Pick<ModelSource, "config" | "configName" | "tensors" | "ropeInterleaved" | "ropeFreqFactors">;

export interface PlanDescription {
  /** False when the budget cannot hold the model (the reason is in the lines). */
  readonly fits: boolean;
  readonly lines: string[];
  readonly json: Record<string, unknown>;
}

/**
 * The plan for `source` under the device, budget and context the flags give (defaults: this
 * machine). A model the architecture cannot read throws; one the budget cannot hold gives fits: false.
 */
export function describePlan(source: PlanSource, f: Flags): PlanDescription {
  const device = chooseDevice(f);
  const compression = parseCompression(f.string("compression"));
  const kvDtype = parseKvDtype(f.string("kv-dtype")) ?? "f16";
  const config = source.config;
  const arch = buildArchitecture(source);
  const budget = device === "cuda" ? gpuBudget(f) : (f.size("max-memory") ?? freemem());
  const ctx = f.number("ctx", { integer: true, min: 1 });
  if (ctx !== undefined && ctx > config.maxPositionEmbeddings) {
    throw new UsageError(`--ctx ${ctx} is more than the model's ${config.maxPositionEmbeddings} positions (max_position_embeddings in ${source.configName})`, `use --ctx ${config.maxPositionEmbeddings} or less`);
  }
  const wanted = ctx ?? Math.min(config.maxPositionEmbeddings, DEFAULT_MAX_SEQ);
  const depth = f.has("no-prefetch") ? 0 : (f.number("prefetch", { integer: true, min: 0, max: 64 }) ?? 1);
  let plan;
  try {
    plan = planLoad(arch, source.tensors, {
      device,
      budget,
      hostCacheBudget: f.size("max-host-cache", false) ?? freemem() / 2,
      prefetchDepth: depth,
      // An explicit --ctx is what the user asked for: it does not shrink.
      context: { wanted, min: ctx ?? 1, max: config.maxPositionEmbeddings },
      kvDtype,
      pageSize: DEFAULT_PAGE_SIZE,
      sequences: 1,
      chunkBytes: f.size("chunk-size"),
      expertCacheBytes: f.size("expert-cache", false),
      budgetFlag: device === "cuda" ? "--max-gpu-memory" : "--max-memory",
    }).memory;
  } catch (e) {
    if (!(e instanceof AirLLMError)) throw e;
    const reason = e.hint ? `${e.message}; ${e.hint}` : e.message;
    return { fits: false, lines: [`does not fit: ${reason}`], json: { fits: false, device, budget_bytes: budget, context: wanted, reason } };
  }
  const perToken = decodeBytesPerToken(plan, config);
  const lines = [
    `${config.modelType} · ${config.numLayers} layer${config.numLayers === 1 ? "" : "s"} · hidden ${config.hiddenSize}${compression ? ` · ${compression}` : ""}`,
    ...planLines(plan, device, kvDtype, DEFAULT_PAGE_SIZE),
    `  per decode token: ${formatBytes(perToken.total)} of weights read, ${formatBytes(perToken.diskBytes)} of them from disk`,
    `  predicted ≥ ${predictedMsPerToken(plan, config, device === "cpu").toFixed(1)} ms per token (cost model, nominal bandwidths: not a measurement)`,
  ];
  if (device === "cpu" && !f.has("max-memory")) lines.push(`  (no --max-memory: planned for the available RAM, ${formatBytes(budget)})`);
  return { fits: true, lines, json: { ...planJson(plan, config, device === "cpu"), device, model_type: config.modelType, kv_dtype: kvDtype, compression: compression ?? null } };
}

function chooseDevice(f: Flags): DeviceKind {
  const d = parseDevice(f);
  if (d === "cpu" || d === "cuda") return d;
  if (f.has("max-gpu-memory")) return "cuda";
  if (f.has("max-memory")) return "cpu";
  return probeCuda().ok ? "cuda" : "cpu";
}

function gpuBudget(f: Flags): number {
  const given = f.size("max-gpu-memory");
  if (given !== undefined) return given;
  const probe = probeCuda();
  if (!probe.ok) throw new UsageError(`--device cuda without --max-gpu-memory needs a GPU to ask (${probe.reason})`, "give the device's budget, e.g. --max-gpu-memory 8GiB");
  return probe.totalMem - DEVICE_MARGIN;
}
