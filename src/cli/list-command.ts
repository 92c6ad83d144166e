// `airllm list`: the models in the shared Hugging Face cache, with their revisions and sizes.
import { scanCache } from "../hub/cache-scan.ts";
import { hubSettings } from "../hub/hub-settings.ts";
import { formatBytes } from "../util/size.ts";
import { Flags, flagHelp, parseArgs, type FlagSpec } from "./args.ts";

const FLAGS: readonly FlagSpec[] = [
  { name: "json", help: "print one JSON object on stdout" },
  { name: "help", short: "h", help: "show this help" },
];

const LIST_HELP = `usage: airllm list [options]

The models in the Hugging Face cache (HF_HUB_CACHE, else $HF_HOME/hub, else
~/.cache/huggingface/hub), downloaded by airllm or by Python's huggingface_hub: each with its size
on disk and its revisions (commit and the branches or tags that point to it).

options:
${flagHelp(FLAGS)}
`;

export async function listCommand(argv: readonly string[], out: (s: string) => void, _err: (s: string) => void): Promise<number> {
  const f = new Flags(parseArgs(argv, FLAGS, "list"));
  if (f.has("help")) {
    out(LIST_HELP);
    return 0;
  }
  const { cacheDir } = hubSettings();
  const repos = scanCache(cacheDir);
  if (f.has("json")) {
    out(JSON.stringify({ cache_dir: cacheDir, models: repos.map((r) => ({ id: r.repo, path: r.dir, size_bytes: r.bytes, partial_bytes: r.partialBytes, revisions: r.revisions })) }) + "\n");
    return 0;
  }
  if (repos.length === 0) {
    out(`no models in ${cacheDir}\n`);
    return 0;
  }
  const rows = repos.map((r) => [
    r.repo,
    formatBytes(r.bytes) + (r.partialBytes > 0 ? ` (+${formatBytes(r.partialBytes)} partial)` : ""),
    r.revisions.map((v) => `${v.refs.length > 0 ? v.refs.join(",") + "=" : ""}${v.commit.slice(0, 12)} (${v.files} files)`).join(" "),
  ]);
  const head = ["MODEL", "SIZE", "REVISIONS"];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  for (const r of [head, ...rows]) out(`${r[0].padEnd(w[0])}  ${r[1].padEnd(w[1])}  ${r[2]}\n`);
  return 0;
}
