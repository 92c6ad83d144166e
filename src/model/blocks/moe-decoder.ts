// A decoder whose MLPs are mixtures of experts in some or all layers (Mixtral, Qwen2-MoE,
// Qwen3-MoE with the Llama attention block; DeepSeek with its latent attention): the attention
// block, then per layer the sparse MLP or the dense one. Each layer's experts are units of their
// own in the plan (entry.experts), fetched by the streamer only when routed to; each sparse layer
// guesses the next sparse layer's experts.
import { ModelFormatError } from "../../errors.ts";
import { quote } from "../../util/validate.ts";
import type { ArchFiles, ModelArch, Pass, TensorSpec } from "../architecture.ts";
import type { DecoderConfig } from "../config.ts";
import { attentionActivations, attentionBlock, attentionDims, attentionTensors } from "./attention.ts";
import { buildDecoder, layerEntryIndex, type DecoderLayers } from "./decoder.ts";
import { denseMlpBlock, denseMlpNames, mlpTensors } from "./mlp.ts";
import { moeActivations, moeBlock, moeTensors, type MoeDims, type MoeNames, type MoeRouting, type NextMoe } from "./moe.ts";

/** Checkpoint names of a sparse layer's MLP (model.layers.N = p). */
export interface MoeLayerNames {
  readonly sparse: (p: string) => MoeNames;
}

/** The attention half of each layer of a MoE decoder. */
export interface LayerAttention {
  tensors(prefix: string): TensorSpec[];
  forward(p: Pass, layer: number, prefix: string): void;
  readonly activations: Readonly<Record<string, number>>;
}

/** The MoE dims of a config (routing beyond the softmax top-k: DeepSeek's). */
export function moeDims(c: DecoderConfig, routing?: MoeRouting): MoeDims {
  const moe = c.moe!;
  return {
    hidden: c.hiddenSize,
    experts: moe.numExperts,
    topK: moe.topK,
    expertInter: moe.expertIntermediate,
    sharedInter: moe.sharedExpertIntermediate,
    normTopk: moe.normTopkProb,
    rmsNormEps: c.rmsNormEps,
    ...(routing ? { routing } : {}),
  };
}

/** The tensors, experts, forward and buffers of a MoE decoder's layers, for buildDecoder. */
export function moeLayers(c: DecoderConfig, files: ArchFiles, names: MoeLayerNames, attention: LayerAttention, dims: MoeDims): Pick<DecoderLayers, "tensors" | "experts" | "forward" | "activations"> {
  const moe = c.moe!;
  const h = c.hiddenSize;
  const sparseNames = (i: number): MoeNames => {
    const { shared, sharedGate, ...routed } = names.sparse(`model.layers.${i}`);
    return moe.sharedExpertIntermediate > 0 ? { ...routed, ...(shared ? { shared } : {}), ...(sharedGate ? { sharedGate } : {}) } : routed;
  };
  const nextSparse = (i: number): NextMoe | null => {
    const j = moe.sparseLayers.indexOf(true, i + 1);
    return j < 0 ? null : { entryIndex: layerEntryIndex(j), names: sparseNames(j), dims };
  };
  // Every sparse layer's plan lists each expert's tensors: an expert count beyond the files is
  // refused before a spec is made for each (the files are checked whole after the plan is built).
  const firstSparse = moe.sparseLayers.indexOf(true);
  const lastExpert = firstSparse < 0 ? null : `${sparseNames(firstSparse).expert(moe.numExperts - 1).gate}.weight`;
  if (lastExpert !== null && !files.has(lastExpert)) {
    throw new ModelFormatError(
      `${files.configName} gives each sparse layer ${moe.numExperts} experts, but the weights have no ${quote(lastExpert)} (expert ${moe.numExperts - 1})`,
      "the expert count (num_experts, num_local_experts, n_routed_experts) and the weights disagree: check that they come from the same model",
    );
  }
  const inter = c.intermediateSize;
  return {
    tensors: (i: number): TensorSpec[] => {
      const p = `model.layers.${i}`;
      const mlp = moe.sparseLayers[i]
        ? moeTensors(sparseNames(i), dims)
        : [{ name: `${p}.post_attention_layernorm.weight`, shape: [h], role: "small" } as TensorSpec, ...mlpTensors(denseMlpNames(p), h, inter, false)];
      return [...attention.tensors(p), ...mlp];
    },
    experts: (i: number) => (moe.sparseLayers[i] ? moe.numExperts : 0),
    forward(p: Pass, i: number): void {
      const prefix = `model.layers.${i}`;
      attention.forward(p, i, prefix);
      if (moe.sparseLayers[i]) moeBlock(p, sparseNames(i), dims, nextSparse(i));
      else denseMlpBlock(p, prefix, h, inter, c.rmsNormEps, false);
    },
    // Dense layers (Qwen-MoE's mlp_only_layers, DeepSeek's first_k_dense_replace) need the dense MLP's buffers too.
    activations: { ...attention.activations, ...(moe.sparseLayers.every(Boolean) ? {} : { gate: inter, up: inter }), ...moeActivations(dims) },
  };
}

export function buildMoeDecoder(c: DecoderConfig, files: ArchFiles, names: MoeLayerNames, qkNorm: boolean): ModelArch {
  const att = attentionDims(c, files, qkNorm);
  const attention: LayerAttention = {
    tensors: (prefix) => attentionTensors(prefix, att),
    forward: (p, layer, prefix) => attentionBlock(p, layer, prefix, att),
    activations: attentionActivations(att),
  };
  return buildDecoder(c, files, moeLayers(c, files, names, attention, moeDims(c)));
}
