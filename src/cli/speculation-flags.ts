// The speculative-decoding flags shared by `run`, `chat` and `serve`.
import { UsageError } from "../errors.ts";
import type { SpeculationMode } from "../engine/speculative/drafter.ts";
import type { FlagSpec, Flags } from "./args.ts";

export const SPECULATION_FLAGS: readonly FlagSpec[] = [
  { name: "speculate", value: "M", help: "speculative decoding: off (default), ngram (drafts from the text so far, no extra model), draft (--draft-model) or tree (a token tree from the draft model if any and the text, verified in one pass); output unchanged" },
  { name: "draft-model", value: "PATH", help: "a small model with the same vocabulary that drafts tokens (loaded whole, outside the budget); implies --speculate draft" },
  { name: "draft-tokens", value: "N", help: "the most draft tokens (tree nodes) per pass (default 8; fewer where a pass's cost grows with its tokens)" },
];

export interface SpeculationFlags {
  readonly speculate: SpeculationMode | undefined;
  readonly draftTokens: number | undefined;
  readonly draftModel: string | undefined;
}

export function speculationFlags(f: Flags): SpeculationFlags {
  const given = f.string("speculate");
  const draftModel = f.string("draft-model");
  if (given !== undefined && given !== "off" && given !== "ngram" && given !== "draft" && given !== "tree") {
    throw new UsageError(`--speculate ${given} is not one of off, ngram, draft, tree`, "ngram needs no extra model; draft needs --draft-model PATH; tree uses one if given");
  }
  const speculate: SpeculationMode | undefined = given ?? (draftModel !== undefined ? "draft" : undefined);
  if (speculate === "draft" && draftModel === undefined) throw new UsageError("--speculate draft needs --draft-model PATH", "a small model of the same family (the same tokenizer); or --speculate ngram, which needs none");
  const draftTokens = f.number("draft-tokens", { integer: true });
  if (draftTokens !== undefined && draftTokens < 1) throw new UsageError(`--draft-tokens ${draftTokens} must be at least 1`);
  return { speculate, draftTokens, draftModel };
}

/** The run summary's speculation part: tokens per pass, acceptance, drafting time. */
export function speculationSummary(tokens: number, decodePasses: number, s: { drafted: number; accepted: number; draftMs: number } | null): string {
  if (s === null) return "";
  const rate = s.drafted > 0 ? Math.round((100 * s.accepted) / s.drafted) : 0;
  return ` · ${(tokens / Math.max(1, decodePasses)).toFixed(2)} tokens/pass (${s.accepted} of ${s.drafted} drafts accepted, ${rate}%; drafting ${Math.round(s.draftMs)} ms)`;
}
