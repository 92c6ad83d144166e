// The units of residency and streaming, cut from the plan entries by the roles their tensors have:
// - body:   an entry's matrices outside any expert (a dense layer; an MoE layer's attention, router
//           side and shared expert; lm_head), streamed in row chunks when it does not stay resident;
// - expert: one expert of an MoE layer, fetched only when a pass routes a row to it;
// - table:  an embedding table, of which a pass reads only its ids' rows.
// "small" tensors (norms, biases, routers) are not units: they are always resident (pinned set).
import type { DType } from "../backend/backend.ts";
import { isBnb, QUANT_BLOCKS, tensorBytes } from "../backend/backend.ts";
import type { PlanEntry } from "../model/architecture.ts";
import type { HostTensor, TensorSource } from "./tensor-source.ts";

/** Every tensor or piece starts on a 256-byte boundary inside its block (wide vector loads). */
export const ALIGN = 256;
export const alignUp = (n: number) => Math.ceil(n / ALIGN) * ALIGN;

export type UnitKind = "body" | "expert" | "table";

export interface Unit {
  readonly id: number;
  readonly kind: UnitKind;
  readonly entry: PlanEntry;
  /** The expert number (kind "expert"), else -1. */
  readonly expert: number;
  /** Checkpoint names, in use order. */
  readonly tensors: readonly string[];
  /** Bytes of the whole unit packed into one block. */
  readonly bytes: number;
  /** Offset of each tensor in that block. */
  readonly offsets: ReadonlyMap<string, number>;
  /** The smallest slot that can stream it: one row group of its largest matrix (0 for tables). */
  readonly minSlot: number;
}

/** A row range of one matrix, placed in a chunk. */
export interface Piece {
  readonly name: string;
  readonly row0: number;
  readonly rows: number;
  readonly tensor: HostTensor;
  /** Bytes of the rows in the file (and in memory). */
  readonly bytes: number;
  /** Byte offset of the rows inside the tensor. */
  readonly srcOffset: number;
  /** Offset inside the chunk's slot. */
  readonly off: number;
}

/** What one streaming slot holds at a time: consecutive pieces of one unit. */
export interface Chunk {
  readonly unit: Unit;
  /** Position among the unit's chunks. */
  readonly index: number;
  readonly pieces: readonly Piece[];
  readonly bytes: number;
}

/**
 * Rows that may start a piece: a GGUF row is whole blocks and a float row stands alone (1), but
 * bitsandbytes blocks run over the flattened tensor, so a piece must start on a block boundary.
 */
export function rowAlign(dtype: DType, cols: number): number {
  if (!isBnb(dtype)) return 1;
  const block = QUANT_BLOCKS[dtype].elements;
  return block / gcd(cols, block);
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** Bytes of rows [row0, row0 + rows) of a matrix, and where they start in its data. */
export function rowRange(t: HostTensor, row0: number, rows: number): { srcOffset: number; bytes: number } {
  const cols = t.shape[t.shape.length - 1] ?? 1;
  const total = t.shape.reduce((a, b) => a * b, 1);
  const start = tensorBytes(t.dtype, [row0 * cols]);
  const end = row0 + rows >= total / cols ? t.bytes : tensorBytes(t.dtype, [(row0 + rows) * cols]);
  return { srcOffset: start, bytes: end - start };
}

/** Bytes of one row of an embedding table, or null when a row is not a whole number of blocks. */
export function tableRowBytes(t: HostTensor): number | null {
  const cols = t.shape[1]!;
  if (isBnb(t.dtype) && cols % QUANT_BLOCKS[t.dtype].elements !== 0) return null;
  return tensorBytes(t.dtype, [cols]);
}

function packed(names: readonly string[], source: TensorSource): { bytes: number; offsets: Map<string, number> } {
  const offsets = new Map<string, number>();
  let bytes = 0;
  for (const n of names) {
    offsets.set(n, bytes);
    bytes += alignUp(source.get(n).bytes);
  }
  return { bytes, offsets };
}

function minSlotOf(names: readonly string[], source: TensorSource): number {
  let most = 0;
  for (const n of names) {
    const t = source.get(n);
    const cols = t.shape[t.shape.length - 1] ?? 1;
    most = Math.max(most, alignUp(rowRange(t, 0, Math.min(rowAlign(t.dtype, cols), t.shape[0]!)).bytes));
  }
  return most;
}

export interface PlanUnits {
  readonly units: readonly Unit[];
  /** Tensors kept resident whatever the budget ("small" role), by entry. */
  readonly pinned: ReadonlyMap<number, readonly string[]>;
  readonly pinnedBytes: number;
}

/**
 * The units of a plan, in plan order (an entry's body before its experts). With `expertUnits`
 * false, experts are part of their layer's body and stream with it (AirLLM's whole-layer way,
 * kept for comparison).
 */
export function planUnits(plan: readonly PlanEntry[], source: TensorSource, expertUnits = true): PlanUnits {
  const units: Unit[] = [];
  const pinned = new Map<number, string[]>();
  let pinnedBytes = 0;
  const add = (kind: UnitKind, entry: PlanEntry, expert: number, tensors: string[]) => {
    if (tensors.length === 0) return;
    const { bytes, offsets } = packed(tensors, source);
    units.push({ id: units.length, kind, entry, expert, tensors, bytes, offsets, minSlot: kind === "table" ? 0 : minSlotOf(tensors, source) });
  };
  for (const e of plan) {
    const small = e.tensors.filter((t) => t.role === "small").map((t) => t.name);
    pinned.set(e.index, small);
    pinnedBytes += small.reduce((a, n) => a + alignUp(source.get(n).bytes), 0);
    for (const t of e.tensors.filter((t) => t.role === "rows")) add("table", e, -1, [t.name]);
    add("body", e, -1, e.tensors.filter((t) => t.role === "matrix" && (t.expert === undefined || !expertUnits)).map((t) => t.name));
    if (!expertUnits) continue;
    for (let x = 0; x < e.experts; x++) add("expert", e, x, e.tensors.filter((t) => t.role === "matrix" && t.expert === x).map((t) => t.name));
  }
  return { units, pinned, pinnedBytes };
}

/**
 * Cuts a unit into chunks of at most `slotBytes`, its tensors in use order. A matrix that fits a
 * fresh slot is never cut (so fused ops still see it whole); a larger one fills what is left of
 * the current chunk and then whole slots, in row groups that start on a block boundary.
 */
export function chunkUnit(unit: Unit, source: TensorSource, slotBytes: number): Chunk[] {
  const chunks: Chunk[] = [];
  let pieces: Piece[] = [];
  let used = 0;
  const close = () => {
    if (pieces.length === 0) return;
    chunks.push({ unit, index: chunks.length, pieces, bytes: used });
    pieces = [];
    used = 0;
  };
  for (const name of unit.tensors) {
    const t = source.get(name);
    const whole = alignUp(t.bytes);
    if (whole <= slotBytes) {
      if (used + whole > slotBytes) close();
      pieces.push({ name, row0: 0, rows: t.shape[0]!, tensor: t, bytes: t.bytes, srcOffset: 0, off: used });
      used += whole;
      continue;
    }
    const totalRows = t.shape[0]!;
    const cols = t.shape[t.shape.length - 1] ?? 1;
    const step = rowAlign(t.dtype, cols);
    const groupBytes = rowRange(t, 0, Math.min(step, totalRows)).bytes;
    let row = 0;
    while (row < totalRows) {
      let rows = Math.min(totalRows - row, Math.floor((slotBytes - used) / groupBytes) * step);
      if (rows <= 0) {
        if (used === 0) throw new Error(`internal: slot of ${slotBytes} bytes holds no row group of ${name}`);
        close();
        continue;
      }
      // Bytes of bnb pieces follow the blocks, so check the real size and back off by a group.
      while (rows > 0 && used + alignUp(rowRange(t, row, rows).bytes) > slotBytes) rows -= step;
      if (rows <= 0) {
        close();
        continue;
      }
      const r = rowRange(t, row, rows);
      pieces.push({ name, row0: row, rows, tensor: t, bytes: r.bytes, srcOffset: r.srcOffset, off: used });
      used += alignUp(r.bytes);
      row += rows;
      if (row < totalRows) close();
    }
  }
  close();
  return chunks;
}
