// A Llama-lineage decoder whose MLPs are mixtures of experts in some or all layers (Mixtral,
// Qwen2-MoE, Qwen3-MoE): the shared attention block, then per layer the sparse MLP or the dense
// one. Each layer's experts are units of their own in the plan (entry.experts), fetched by the
// streamer only when routed to; each sparse layer guesses the next sparse layer's experts.
import { ModelFormatError } from "../../errors.ts";
import { quote } from "../../util/validate.ts";
import type { ArchFiles, ModelArch, Pass, TensorSpec } from "../architecture.ts";
import type { DecoderConfig } from "../config.ts";
import { attentionActivations, attentionBlock, attentionDims, attentionTensors } from "./attention.ts";
import { buildDecoder, layerEntryIndex } from "./decoder.ts";
import { denseMlpBlock, denseMlpNames, mlpTensors } from "./mlp.ts";
import { moeActivations, moeBlock, moeTensors, type MoeDims, type MoeNames, type NextMoe } from "./moe.ts";

/** Checkpoint names of a sparse layer's MLP (model.layers.N = p). */
export interface MoeLayerNames {
  readonly sparse: (p: string) => MoeNames;
}

export function buildMoeDecoder(c: DecoderConfig, files: ArchFiles, names: MoeLayerNames, qkNorm: boolean): ModelArch {
  const moe = c.moe!;
  const att = attentionDims(c, files, qkNorm);
  const h = c.hiddenSize;
  const dims: MoeDims = {
    hidden: h,
    experts: moe.numExperts,
    topK: moe.topK,
    expertInter: moe.expertIntermediate,
    sharedInter: moe.sharedExpertIntermediate,
    normTopk: moe.normTopkProb,
    rmsNormEps: c.rmsNormEps,
  };
  const sparseNames = (i: number): MoeNames => {
    const n = names.sparse(`model.layers.${i}`);
    return moe.sharedExpertIntermediate > 0 ? n : { norm: n.norm, router: n.router, expert: n.expert };
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
      "the expert count (num_experts, num_local_experts) and the weights disagree: check that they come from the same model",
    );
  }
  const inter = c.intermediateSize;
  return buildDecoder(c, files, {
    tensors: (i: number): TensorSpec[] => {
      const p = `model.layers.${i}`;
      const mlp = moe.sparseLayers[i]
        ? moeTensors(sparseNames(i), dims)
        : [{ name: `${p}.post_attention_layernorm.weight`, shape: [h], role: "small" } as TensorSpec, ...mlpTensors(denseMlpNames(p), h, inter, false)];
      return [...attentionTensors(p, att), ...mlp];
    },
    experts: (i: number) => (moe.sparseLayers[i] ? moe.numExperts : 0),
    forward(p: Pass, i: number): void {
      const prefix = `model.layers.${i}`;
      attentionBlock(p, i, prefix, att);
      if (moe.sparseLayers[i]) moeBlock(p, sparseNames(i), dims, nextSparse(i));
      else denseMlpBlock(p, prefix, h, inter, c.rmsNormEps, false);
    },
    // Dense layers (Qwen-MoE's mlp_only_layers) need the dense MLP's buffers too.
    activations: { ...attentionActivations(att), ...(moe.sparseLayers.every(Boolean) ? {} : { gate: inter, up: inter }), ...moeActivations(dims) },
  });
}
