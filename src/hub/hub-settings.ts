// Where the hub is and who we are there, read the way Python's huggingface_hub reads it, so both
// share one cache and one login: HF_ENDPOINT, HF_HUB_CACHE (else $HF_HOME/hub, else
// ~/.cache/huggingface/hub), HF_TOKEN (else the token file `hf auth login` writes), HF_HUB_OFFLINE.
// Hand-written: @huggingface/hub's getHFHubCachePath (2.17.5) reads process.env only, expands no
// `~`, and neither it nor anything else in the package reads the token file or HF_HUB_OFFLINE.
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export const DEFAULT_ENDPOINT = "https://huggingface.co";

/** What a caller may set instead of the environment (flags, AutoModel options). */
export interface HubOptions {
  /** An access token (`--token`, AirLLM's `hf_token`); beats HF_TOKEN and the token file. */
  readonly token?: string;
  /** No network at all (`--offline`); HF_HUB_OFFLINE=1 does the same. */
  readonly offline?: boolean;
  /** Cache folder instead of HF_HUB_CACHE. */
  readonly cacheDir?: string;
  /** Hub address instead of HF_ENDPOINT. */
  readonly endpoint?: string;
}

export interface HubSettings {
  readonly endpoint: string;
  readonly cacheDir: string;
  readonly token: string | null;
  /** Where the token came from, for messages: "--token", "HF_TOKEN" or the token file's path. */
  readonly tokenSource: string | null;
  readonly offline: boolean;
}

type Env = Readonly<Record<string, string | undefined>>;

const truthy = (v: string | undefined) => v !== undefined && ["1", "on", "yes", "true"].includes(v.trim().toLowerCase());
const expandHome = (p: string) => (p === "~" || p.startsWith("~/") ? join(homedir(), p.slice(1)) : p);

/** $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface (as huggingface_hub). */
export function hfHome(env: Env = process.env): string {
  if (env.HF_HOME) return expandHome(env.HF_HOME);
  return join(env.XDG_CACHE_HOME ? expandHome(env.XDG_CACHE_HOME) : join(homedir(), ".cache"), "huggingface");
}

export function hubSettings(o: HubOptions = {}, env: Env = process.env): HubSettings {
  const cacheDir = o.cacheDir ?? (env.HF_HUB_CACHE ? expandHome(env.HF_HUB_CACHE) : env.HUGGINGFACE_HUB_CACHE ? expandHome(env.HUGGINGFACE_HUB_CACHE) : join(hfHome(env), "hub"));
  const endpoint = (o.endpoint ?? env.HF_ENDPOINT ?? DEFAULT_ENDPOINT).replace(/\/+$/, "");
  let token: string | null = null;
  let tokenSource: string | null = null;
  if (o.token) [token, tokenSource] = [o.token, "--token"];
  else if (env.HF_TOKEN?.trim()) [token, tokenSource] = [env.HF_TOKEN.trim(), "HF_TOKEN"];
  else {
    const file = env.HF_TOKEN_PATH ? expandHome(env.HF_TOKEN_PATH) : join(hfHome(env), "token");
    const stored = existsSync(file) ? readFileSync(file, "utf8").trim() : "";
    if (stored) [token, tokenSource] = [stored, file];
  }
  return { endpoint, cacheDir, token, tokenSource, offline: o.offline === true || truthy(env.HF_HUB_OFFLINE) };
}
