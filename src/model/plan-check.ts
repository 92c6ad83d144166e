// The weight files checked against the plan an architecture built from the config, before anything
// is sized from either: every tensor of the plan exists with the shape the config implies and a
// dtype its op takes, and every tensor the files hold is read by the plan — a 4-layer config over
// a 5-layer checkpoint runs a different model than the files hold, so it is refused, not truncated.
import { isQuantized } from "../backend/backend.ts";
import type { TensorSource } from "../engine/tensor-source.ts";
import { ModelFormatError } from "../errors.ts";
import { quote } from "../util/validate.ts";
import type { PlanEntry } from "./architecture.ts";

/**
 * Tensors a checkpoint may hold beside the plan without meaning another model: a tied model's
 * saved copy of the embedding (AirLLM's split writes one) and old Llama and ChatGLM checkpoints' rotary tables,
 * which are recomputed.
 */
const REDUNDANT = [/^lm_head\.weight$/, /\.rotary_emb\.inv_freq$/, /\.rotary_pos_emb\.inv_freq$/];

/** Names shown when listing tensors in a message; the count says how many more there are. */
const LISTED = 3;

/**
 * Throws a ModelFormatError naming the file and tensor for the first mismatch. `configName` says
 * where the dimensions came from ("/m/config.json", or the metadata of a .gguf file).
 */
export function checkPlanShapes(plan: readonly PlanEntry[], source: TensorSource, configName: string): void {
  const used = new Set<string>();
  for (const entry of plan) {
    for (const spec of entry.tensors) {
      used.add(spec.name);
      const t = source.get(spec.name);
      if (t.shape.length !== spec.shape.length || t.shape.some((v, i) => v !== spec.shape[i])) {
        throw new ModelFormatError(
          `${quote(t.file, 200)}: tensor ${quote(spec.name)} has shape [${t.shape.join(", ")}], but ${configName} implies [${spec.shape.join(", ")}]`,
          `the weights and ${configName} disagree: check that they come from the same model`,
        );
      }
      // Norm weights and biases feed element-wise ops, which take float vectors only.
      if (spec.shape.length === 1 && isQuantized(t.dtype)) {
        throw new ModelFormatError(
          `${quote(t.file, 200)}: tensor ${quote(spec.name)} is ${t.dtype}, but a norm weight or bias must be f32, f16 or bf16`,
          "the file was quantized with a tool that quantizes vectors too; convert the model again (llama.cpp keeps them F32)",
        );
      }
    }
  }
  const extra = source.unused(used).filter((n) => !REDUNDANT.some((r) => r.test(n)));
  if (extra.length > 0) {
    const listed = extra.slice(0, LISTED).map((n) => quote(n)).join(", ");
    throw new ModelFormatError(
      `${extra.length} tensor${extra.length === 1 ? "" : "s"} of the weights ${extra.length === 1 ? "is" : "are"} not part of the model ${configName} describes: ${listed}${extra.length > LISTED ? `, … (${extra.length - LISTED} more)` : ""}`,
      `the weights and ${configName} come from different models, or a count in it (num_hidden_layers, num_experts) is wrong`,
    );
  }
}
