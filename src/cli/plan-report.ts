// The memory plan in words (run --verbose, airllm plan) and as the JSON object `airllm plan --json`
// prints. The predicted time comes from DESIGN.md's cost model with nominal bandwidths.
import { decodePassBytes, predictPassSeconds } from "../engine/cost-model.ts";
import type { MemoryPlan } from "../engine/memory-plan.ts";
import type { ModelConfig } from "../model/config.ts";
import { formatBytes } from "../util/size.ts";

/** Share of the expert bytes one decode pass touches: top-k of the experts (1 for dense models). */
export function expertFraction(c: ModelConfig): number {
  return c.moe ? c.moe.topK / c.moe.numExperts : 1;
}

/** Weight bytes one decode token reads (resident, host-cached and from disk; MoE: the routed share of the experts). */
export function decodeBytesPerToken(plan: MemoryPlan, c: ModelConfig): { total: number; diskBytes: number } {
  const b = decodePassBytes(plan, expertFraction(c));
  return { total: b.residentBytes + b.hostCachedBytes + b.diskBytes, diskBytes: b.diskBytes };
}

export function predictedMsPerToken(plan: MemoryPlan, c: ModelConfig, hostIsDevice: boolean): number {
  return predictPassSeconds(decodePassBytes(plan, expertFraction(c)), hostIsDevice) * 1000;
}

export function planLines(plan: MemoryPlan, device: string, kvDtype: string, pageSize: number): string[] {
  const p = plan;
  const ring = p.slots > 0 ? `${p.slots} × ${formatBytes(p.slotBytes)}` : "none";
  const experts = p.expertSlots > 0 ? `, expert slots ${p.expertSlots} × ${formatBytes(p.expertSlotBytes)}` : "";
  return [
    `plan for ${device}, budget ${formatBytes(p.budget)}: ${formatBytes(p.usedBytes)} used`,
    `  context ${p.context} tokens${p.contextShrunk ? " (shrunk to fit the budget)" : ""}, at most ${p.maxContext}; ` +
      `KV ${kvDtype} ${formatBytes(p.kvBytes)} in ${p.kvPages} pages of ${pageSize}`,
    `  activations and embedding rows ${formatBytes(p.activationBytes)}, norms and routers ${formatBytes(p.pinnedBytes)}, backend ${formatBytes(p.backendBytes)}`,
    `  streaming ring ${ring}${experts}`,
    `  weights: ${formatBytes(p.residentBytes)} resident in ${p.resident.length} units, ` +
      `${formatBytes(p.hostCachedBytes)} from ${device === "cpu" ? "host" : "pinned host"} RAM, ${formatBytes(p.diskBytes)} from disk every pass`,
  ];
}

/** The object `airllm plan --json` prints (bytes as numbers). */
export function planJson(plan: MemoryPlan, c: ModelConfig, hostIsDevice: boolean): Record<string, unknown> {
  const p = plan;
  return {
    fits: true,
    context: p.context,
    max_context: p.maxContext,
    context_shrunk: p.contextShrunk,
    budget_bytes: p.budget,
    used_bytes: p.usedBytes,
    kv_bytes: p.kvBytes,
    kv_pages: p.kvPages,
    activation_bytes: p.activationBytes,
    pinned_bytes: p.pinnedBytes,
    backend_bytes: p.backendBytes,
    ring_bytes: p.ringBytes,
    slots: p.slots,
    slot_bytes: p.slotBytes,
    expert_slots: p.expertSlots,
    expert_slot_bytes: p.expertSlotBytes,
    resident_bytes: p.residentAllocBytes,
    host_cached_bytes: p.hostCachedBytes,
    disk_bytes: p.diskBytes,
    decode_bytes_per_token: Math.round(decodeBytesPerToken(p, c).total),
    decode_disk_bytes_per_token: Math.round(decodeBytesPerToken(p, c).diskBytes),
    predicted_ms_per_token: Math.round(predictedMsPerToken(p, c, hostIsDevice) * 10) / 10,
  };
}
