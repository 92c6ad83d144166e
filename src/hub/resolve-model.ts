// Where a model argument leads, in the order the issue promises: a local path as it is, else a
// hub id found complete in the cache (no network call at all), else the id downloaded. Offline,
// an id the cache cannot serve fails at once.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { cachedCommit, repoFolder, snapshotDir } from "./cache-layout.ts";
import { chooseFiles, READS_PYTORCH_BIN, shardsOfIndex } from "./file-choice.ts";
import { offlineMiss } from "./hub-errors.ts";
import { formatHubId, parseHubId, type HubId } from "./hub-id.ts";
import { hubSettings, type HubSettings } from "./hub-settings.ts";
import { pullModel, type PullOptions } from "./pull.ts";

/** Files under `dir` whose link resolves, as repo paths ("a/b.gguf"). */
function presentFiles(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (!existsSync(path)) continue; // a dangling link: its blob is gone
    if (statSync(path).isDirectory()) out.push(...presentFiles(path, `${prefix}${name}/`));
    else out.push(prefix + name);
  }
  return out;
}

/**
 * The model path a cached snapshot of `id` serves, or null when there is none or it lacks what
 * the model needs (a pull that was interrupted, a Python download of a few files).
 */
export function cachedModelPath(id: HubId, s: HubSettings): string | null {
  const repoDir = repoFolder(s.cacheDir, id.repo);
  const commit = cachedCommit(repoDir, id.revision);
  if (commit === null) return null;
  const snap = snapshotDir(repoDir, commit);
  if (!existsSync(snap)) return null;
  const files = presentFiles(snap);
  let choice;
  try {
    choice = chooseFiles(id.repo, files, { quant: id.quant, readsPytorchBin: READS_PYTORCH_BIN });
  } catch {
    return null;
  }
  if (choice.ggufFile !== null) return join(snap, choice.ggufFile);
  if (!files.includes("config.json")) return null;
  if (choice.index !== null) {
    const have = new Set(files);
    try {
      if (!shardsOfIndex(choice.index, JSON.parse(readFileSync(join(snap, choice.index), "utf8"))).every((f) => have.has(f))) return null;
    } catch {
      return null;
    }
  }
  return snap;
}

/** A local path or hub id → the path the loader opens; downloads what the cache lacks. */
export async function resolveModel(spec: string, o: PullOptions = {}): Promise<string> {
  if (existsSync(spec)) return spec;
  const id = parseHubId(spec);
  if (id === null) return spec; // not an id either: the loader says the path does not exist
  const s = hubSettings(o);
  const cached = cachedModelPath(id, s);
  if (cached !== null) return cached;
  if (s.offline) throw offlineMiss(formatHubId(id), s);
  return (await pullModel(id, o)).modelPath;
}
