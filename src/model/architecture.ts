// The boundary between the engine and the model architectures (src/model/arch/*). An
// architecture, built for one config, is a list of plan entries (AirLLM's modules: one split file
// each), the tensors of each entry with their shapes and how they are used, the activation
// buffers a pass needs, the KV geometry, and a forward function per entry. The engine, the
// streamer, the planner and the split only ever see this file's types: they never name an
// architecture.
import type { Backend, PagedKv, Weight } from "../backend/backend.ts";
import type { Batch, BatchRow } from "../engine/batch.ts";
import type { BaseConfig, ModelConfig } from "./config.ts";
import type { ConfigReader } from "./config-reader.ts";

/**
 * How the forward uses a tensor, which decides how it may be stored and streamed:
 * - "matrix": multiplied against activations, row by row: may stream in row chunks;
 * - "small": needed whole and tiny next to the matrices (norms, biases, routers): kept resident;
 * - "rows": an embedding table: a pass reads only the rows of its token ids.
 */
export type TensorRole = "matrix" | "small" | "rows";

export interface TensorSpec {
  /** Checkpoint name (Hugging Face naming; GGUF files are mapped onto it). */
  readonly name: string;
  /** The shape config.json implies, checked against the file at load. */
  readonly shape: readonly number[];
  readonly role: TensorRole;
  /** The expert this tensor belongs to (MoE), streamed and cached as its own unit. */
  readonly expert?: number;
}

export interface PlanEntry {
  /** Index in the plan. */
  readonly index: number;
  /** Module name, e.g. "model.layers.3"; also the AirLLM split file's stem. */
  readonly name: string;
  /** Decoder layer number, or -1 for entries outside the layer stack. */
  readonly layer: number;
  /** Every tensor of the module, in the order the forward uses them. */
  readonly tensors: readonly TensorSpec[];
  /** Experts in this entry (MoE layers), numbered 0 .. experts-1; 0 elsewhere. */
  readonly experts: number;
  /**
   * The name the split file gives each tensor (a tied model's lm_head entry stores its copy of
   * the embedding as lm_head.weight); absent: the checkpoint name.
   */
  readonly splitNames?: ReadonlyMap<string, string>;
}

/** One row range of a matrix, as the weight provider holds it right now. */
export interface RowPiece {
  /** The rows [row0, row0 + weight.shape[0]) of the whole matrix. */
  readonly row0: number;
  /** Rows of the whole matrix (the width of the output a product with it writes). */
  readonly totalRows: number;
  readonly weight: Weight;
}

/**
 * The weights of the entry being run, as the weight provider hands them out. Matrices may be
 * streamed in row chunks, so the forward asks for what it is about to use, in the order the
 * entry lists its tensors; a piece is valid until the next piece or tensor is asked for.
 */
export interface EntryWeights {
  /** A tensor wholly in memory: "small" tensors always; a matrix only when not cut in chunks. */
  get(name: string): Weight;
  /** Matrices needed at the same time (fused q/k/v), or null when one of them streams in pieces. */
  together(names: readonly string[]): Weight[] | null;
  /** A matrix's row pieces in order (one piece when it is whole). */
  pieces(name: string): Iterable<RowPiece>;
  /** An embedding table for `ids`: a table holding at least those rows, and the ids to use in it. */
  rows(name: string, ids: Int32Array): { readonly table: Weight; readonly ids: Int32Array };
  /**
   * MoE: the weights of each expert in `ids` (ascending, distinct), one after the other; each
   * expert's weights are valid until the iteration moves on. Fetching overlaps the iteration.
   */
  experts(ids: readonly number[]): Iterable<readonly [number, EntryWeights]>;
  /**
   * MoE: whether a guess of entry `entryIndex`'s routing is worth making: its experts are fetched
   * per pass and guessing is on; false when they are all in memory.
   */
  guessesExperts(entryIndex: number): boolean;
  /** MoE: experts that entry `entryIndex` will probably use this pass (fetched early if there is room). */
  predictExperts(entryIndex: number, ids: readonly number[]): void;
  /** A "small" tensor of another entry (always resident): the next layer's router, for guessing. */
  smallOf(entryIndex: number, name: string): Weight;
}

/** Named activation buffers: floats per row of the pass (the engine allocates rows × width). */
export type ActivationWidths = Readonly<Record<string, number>>;

/** What one entry's forward sees of the pass. */
export interface Pass {
  readonly backend: Backend;
  readonly batch: Batch;
  /** Device addresses of the buffers the architecture asked for in `activations`. */
  readonly buf: Readonly<Record<string, number>>;
  /** Rows whose logits are wanted (indices into the batch's rows), in output order. */
  readonly logitRows: readonly number[];
  /** logits[logitRows.length, vocab]: where the last entry writes. */
  readonly logits: number;
  readonly weights: EntryWeights;
  /** This layer's paged KV cache for one sequence of the batch. */
  kv(layer: number, row: BatchRow): PagedKv;
  /** Device address of a draft tree's rows (row.tree, uploaded for the pass; backend.ts AttentionShape.tree). */
  tree(row: BatchRow): number;
  /** Device addresses of the architecture's constant tables (uploaded once). */
  readonly constants: Readonly<Record<string, number>>;
  /** Device addresses of this pass's tables (ModelArch.passTables), uploaded before the pass. */
  readonly tables: Readonly<Record<string, number>>;
}

/**
 * A host table the forward reads on the device, uploaded once by the engine. Its values are
 * computed on first use (a table may read the weights: Baichuan2's head norms), so building an
 * architecture to plan or split a model reads nothing; its length is known up front for the plan.
 */
export interface ConstantTable {
  /** Floats in the table. */
  readonly length: number;
  values(): Float32Array;
}

/** A table whose values are already known. */
export function constantTable(values: Float32Array): ConstantTable {
  return { length: values.length, values: () => values };
}

/** A table of `length` floats computed by `compute` on first use, once. */
export function lazyTable(length: number, compute: () => Float32Array): ConstantTable {
  let values: Float32Array | null = null;
  return {
    length,
    values: () => {
      values ??= compute();
      if (values.length !== length) throw new Error(`internal: a constant table of ${length} floats computed ${values.length}`);
      return values;
    },
  };
}

/** Per token, per layer: the floats of one key row and one value row the cache stores. */
export interface KvShape {
  readonly layers: number;
  readonly width: number;
  /**
   * Values are read from the key rows themselves and the cache stores no value rows (multi-head
   * latent attention: the compressed latent is both). Absent: separate value rows of `width`.
   */
  readonly valuesInKeys?: boolean;
}

/** An architecture built for one config: everything the engine needs to run it. */
export interface ModelArch {
  readonly plan: readonly PlanEntry[];
  readonly kv: KvShape;
  readonly vocab: number;
  readonly hidden: number;
  /** Activation buffers of a pass (floats per row); `hidden`-wide rows come first. */
  readonly activations: ActivationWidths;
  /** Host tables the forward reads on the device (rotary frequencies, ALiBi slopes), uploaded once. */
  readonly constants: Readonly<Record<string, ConstantTable>>;
  /**
   * Host tables that depend on the pass (per-sequence rotary frequencies under dynamic NTK
   * scaling, Qwen's logn query factors), computed from the batch before it runs and uploaded once
   * for all its entries. Absent: none.
   */
  passTables?(batch: Batch): Readonly<Record<string, Float32Array>>;
  /** Runs one plan entry over the whole batch. */
  forward(entry: PlanEntry, pass: Pass): void;
}

/** The names of every tensor an entry reads from the files. */
export function entryTensorNames(entry: PlanEntry): string[] {
  return entry.tensors.map((t) => t.name);
}

/** What an architecture may ask of the weight files while it builds its plan. */
export interface ArchFiles {
  has(name: string): boolean;
  /** Where the config came from, for messages (a config.json path, or a GGUF file's metadata). */
  readonly configName: string;
  /**
   * The Euclidean norm of every row of a matrix as stored (dequantized), read from the files on
   * the call: only call it from a ConstantTable's values(), i.e. when a model is loaded to run.
   */
  rowNorms(name: string): Float32Array;
  /** q/k rows hold rotary pairs side by side (llama.cpp's GGUF layout), not rotate-half halves. */
  readonly ropeInterleaved: boolean;
  /** Divisors of the rotary frequencies (GGUF rope_freqs.weight), or null. */
  readonly ropeFreqFactors: Float32Array | null;
}

/** ArchFiles.rowNorms where an architecture is built to plan or split a model, never to run it. */
export function noRowReads(name: string): never {
  throw new Error(`internal: the rows of ${name} were read while planning or splitting; constant tables read weights only at load`);
}

/** One architecture file: its config parser and its builder (src/model/arch/*). */
export interface Architecture<C extends BaseConfig = ModelConfig> {
  /** The file's name, e.g. "llama"; config.arch. */
  readonly name: string;
  /** config.json's fields with this model type's transformers defaults. */
  parseConfig(r: ConfigReader, modelType: string): C;
  /** The plan, shapes and forward for one config. */
  build(config: C, files: ArchFiles): ModelArch;
}
