// The flags every command that takes MODEL shares for hub ids: a token, offline, and --force past
// a failed disk check.
import type { HubOptions } from "../hub/hub-settings.ts";
import type { FlagSpec, Flags } from "./args.ts";

export const HUB_FLAGS: readonly FlagSpec[] = [
  { name: "token", value: "TOKEN", help: "Hugging Face token for gated or private models (default: $HF_TOKEN, else the token file in $HF_HOME)" },
  { name: "offline", help: "never contact the hub: MODEL must be a path or in the cache (as HF_HUB_OFFLINE=1)" },
  { name: "force", help: "download even when the fit check finds too little disk space" },
];

export function hubOptions(f: Flags): HubOptions & { force: boolean } {
  return { token: f.string("token"), offline: f.has("offline") || undefined, force: f.has("force") };
}
