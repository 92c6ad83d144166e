// `airllm rm ORG/NAME`: delete one model from the shared Hugging Face cache (all its revisions).
import { UsageError } from "../errors.ts";
import { removeCachedRepo } from "../hub/cache-scan.ts";
import { parseHubId } from "../hub/hub-id.ts";
import { hubSettings } from "../hub/hub-settings.ts";
import { formatBytes } from "../util/size.ts";
import { Flags, flagHelp, parseArgs, type FlagSpec } from "./args.ts";

const FLAGS: readonly FlagSpec[] = [{ name: "help", short: "h", help: "show this help" }];

const RM_HELP = `usage: airllm rm ORG/NAME

Delete the model ORG/NAME from the Hugging Face cache: every revision, blob and partial download.

options:
${flagHelp(FLAGS)}
`;

export async function rmCommand(argv: readonly string[], out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const parsed = parseArgs(argv, FLAGS, "rm");
  if (new Flags(parsed).has("help")) {
    out(RM_HELP);
    return 0;
  }
  if (parsed.positionals.length !== 1) throw new UsageError("expected one model", "airllm rm ORG/NAME (airllm list shows what is cached)");
  const spec = parsed.positionals[0]!;
  const id = parseHubId(spec);
  if (id === null || id.revision !== "main" || id.quant !== null) throw new UsageError(`"${spec}" is not a model id ORG/NAME`, "airllm rm removes a whole model: airllm rm ORG/NAME (airllm list shows what is cached)");
  const { cacheDir } = hubSettings();
  const removed = removeCachedRepo(cacheDir, id.repo);
  if (removed === null) throw new UsageError(`${id.repo} is not in the cache (${cacheDir})`, "airllm list shows what is cached");
  err(`airllm: removed ${id.repo}: ${formatBytes(removed.bytes + removed.partialBytes)}, ${removed.revisions.length} revision${removed.revisions.length === 1 ? "" : "s"}\n`);
  return 0;
}
