// What can go wrong between us and the hub, each with the one thing the user can do about it.
import { AirLLMError } from "../errors.ts";
import type { HubSettings } from "./hub-settings.ts";

/** The hub refused, lacked something, or could not be reached; or the cache cannot serve offline. */
export class HubError extends AirLLMError {
  constructor(message: string, hint?: string) {
    super(message, hint);
    this.name = "HubError";
  }
}

/** How a token reaches us, for every message that asks for one. */
export const TOKEN_HINT = "pass a token with --token hf_..., HF_TOKEN=hf_..., AutoModel's hf_token option, or log in once with `hf auth login` (it writes the token file in HF_HOME)";

/** 401/403 on a gated or private model: name the page where access is requested. */
export function accessError(repo: string, s: HubSettings, status: number, code: string | null): HubError {
  const page = `${s.endpoint}/${repo}`;
  if (code === "RepoNotFound") return notFoundError(repo, s);
  if (s.token === null) {
    return new HubError(`model ${repo} is gated or private: the hub needs a token to download it (HTTP ${status})`, `request access at ${page}, then ${TOKEN_HINT}`);
  }
  return new HubError(
    `model ${repo} is gated or private and the token from ${s.tokenSource} has no access to it (HTTP ${status})`,
    `request access at ${page} with the account the token belongs to (or use a token of an account that has it)`,
  );
}

export function notFoundError(repo: string, s: HubSettings): HubError {
  return new HubError(
    `model ${repo} is not a local path, and ${s.endpoint} has no model ${repo}`,
    `check the spelling (ORG/NAME as on the model page, e.g. TinyLlama/TinyLlama-1.1B-Chat-v1.0)` + (s.token === null ? `; a private model is reported missing without a token: ${TOKEN_HINT}` : ""),
  );
}

export function revisionError(repo: string, revision: string): HubError {
  return new HubError(`model ${repo} has no revision "${revision}"`, `give a branch, a tag or a commit of ${repo} (ORG/NAME@main is the default branch)`);
}

export function offlineMiss(what: string, s: HubSettings): HubError {
  return new HubError(
    `${what} is not in the cache (${s.cacheDir}), and the hub is not asked: offline (HF_HUB_OFFLINE or --offline)`,
    "download it first with airllm pull while online, or unset HF_HUB_OFFLINE / drop --offline",
  );
}
