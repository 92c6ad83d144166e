// A dense decoder layer of any names: the attention block, then the gated MLP behind its own norm
// (two matrices, or gate|up fused in one). Architectures with their own checkpoint names build
// their layers from this instead of repeating the tensor list and the forward.
import type { Pass, TensorSpec } from "../architecture.ts";
import type { AttentionBlock } from "./attention.ts";
import type { DecoderLayers } from "./decoder.ts";
import { fusedMlpActivations, fusedMlpBlock, fusedMlpTensors, gatedMlpBlock, gateUpSplit, mlpTensors, type FusedMlpNames, type MlpNames } from "./mlp.ts";

export interface DenseLayer {
  /** Module of layer i, e.g. model.layers.i. */
  readonly prefix: (i: number) => string;
  readonly attention: AttentionBlock;
  /** The MLP's norm weight under a layer prefix. */
  readonly mlpNorm: (prefix: string) => string;
  /** The MLP's matrices under a layer prefix: gate, up and down, or gate|up fused and down. */
  readonly mlp: (prefix: string) => MlpNames | FusedMlpNames;
  readonly hidden: number;
  readonly inter: number;
  readonly rmsNormEps: number;
  /** Biases on the MLP's matrices (not with gate|up fused). */
  readonly mlpBias: boolean;
}

const isFused = (n: MlpNames | FusedMlpNames): n is FusedMlpNames => "gateUp" in n;

/** The tensors, forward and buffers of dense layers for buildDecoder. */
export function denseLayers(l: DenseLayer): Pick<DecoderLayers, "tensors" | "forward" | "activations"> {
  const { hidden: h, inter } = l;
  const fused = isFused(l.mlp(l.prefix(0)));
  const split = gateUpSplit(inter);
  return {
    tensors: (i: number): TensorSpec[] => {
      const p = l.prefix(i);
      const n = l.mlp(p);
      const mlp = isFused(n) ? fusedMlpTensors(n, h, inter) : mlpTensors(n, h, inter, l.mlpBias);
      return [...l.attention.tensors(p), { name: l.mlpNorm(p), shape: [h], role: "small" }, ...mlp];
    },
    forward(p: Pass, i: number): void {
      const prefix = l.prefix(i);
      l.attention.forward(p, i, prefix);
      const n = l.mlp(prefix);
      if (isFused(n)) fusedMlpBlock(p, l.mlpNorm(prefix), n, split, h, inter, l.rmsNormEps);
      else gatedMlpBlock(p, l.mlpNorm(prefix), n, h, inter, l.rmsNormEps, l.mlpBias);
    },
    activations: { ...l.attention.activations, ...(fused ? fusedMlpActivations(inter) : { gate: inter, up: inter }) },
  };
}
