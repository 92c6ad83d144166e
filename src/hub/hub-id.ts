// A Hugging Face model id as users write it: ORG/NAME, then optionally @REVISION (a branch, a tag
// or a commit) and :QUANT, which picks one GGUF file of a GGUF repo as ollama and llama.cpp's
// `-hf` write it (`bartowski/Llama-3.2-1B-Instruct-GGUF:Q4_K_M`).
import { UsageError } from "../errors.ts";

export interface HubId {
  /** "ORG/NAME". */
  readonly repo: string;
  /** Branch, tag or 40-hex commit; "main" when none is given. */
  readonly revision: string;
  /** GGUF quantization to pick (`Q4_K_M`), or null. */
  readonly quant: string | null;
}

// The Hub's own rule for a name part: letters, digits, '-', '_', '.', not starting with '-' or '.'.
const PART = "[A-Za-z0-9_][A-Za-z0-9._-]*";
const ID = new RegExp(`^(${PART}/${PART})(?:@([^:@\\s]+))?(?::([A-Za-z0-9][A-Za-z0-9_.-]*))?$`);
const COMMIT = /^[0-9a-f]{40}$/;

/** Whether `revision` is a commit hash (immutable: nothing to resolve). */
export function isCommitHash(revision: string): boolean {
  return COMMIT.test(revision);
}

/**
 * The hub id `spec` names, or null when it cannot be one (`./x`, `/abs/path`, `a/b/c`, `x.gguf`):
 * callers try it as a local path first, so an id only matters when no such path exists.
 */
export function parseHubId(spec: string): HubId | null {
  const m = ID.exec(spec);
  if (!m) return null;
  const [, repo, revision, quant] = m;
  if (repo.includes("..") || repo.split("/").some((p) => p.endsWith(".") || p === "")) return null;
  if (revision !== undefined && (revision.split("/").some((p) => p === "" || p === "." || p === ".."))) {
    throw new UsageError(`revision "${revision}" of ${repo} is not a branch, tag or commit`, `write ${repo}@main, ${repo}@v1.0 or ${repo}@<40-hex commit>`);
  }
  return { repo, revision: revision ?? "main", quant: quant ?? null };
}

/** The id as the user would write it back. */
export function formatHubId(id: HubId): string {
  return id.repo + (id.revision !== "main" ? `@${id.revision}` : "") + (id.quant !== null ? `:${id.quant}` : "");
}
