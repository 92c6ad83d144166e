// One model repo on the hub, through @huggingface/hub: which commit a revision names and which
// files it holds (model info: sha and siblings), each file's size and blob id (paths-info), and
// safetensors headers read remotely with range requests (parseSafetensorsMetadata), so a plan can
// be made before any weight byte is fetched.
import { HubApiError, modelInfo, parseSafetensorsMetadata, pathsInfo, type SafetensorsFileHeader } from "@huggingface/hub";
import type { HashKind } from "./blob-hash.ts";
import { HubError, notFoundError } from "./hub-errors.ts";
import { hubFetch } from "./hub-fetch.ts";
import type { HubSettings } from "./hub-settings.ts";

export interface RepoFile {
  readonly path: string;
  readonly size: number;
  /** The blob name in the cache: the sha256 of an LFS file, else the git blob oid. */
  readonly etag: string;
  readonly hash: HashKind;
}

export interface RepoRevision {
  readonly commit: string;
  /** Every file path of the commit. */
  readonly files: readonly string[];
  readonly gated: boolean;
}

export class RemoteRepo {
  readonly fetch: typeof fetch;

  constructor(
    readonly settings: HubSettings,
    readonly repo: string,
    readonly revision: string,
  ) {
    this.fetch = hubFetch(settings, repo, revision);
  }

  private get common() {
    return { hubUrl: this.settings.endpoint, fetch: this.fetch };
  }

  /** The commit `revision` points to now, and its files. */
  async resolve(): Promise<RepoRevision> {
    const info = await this.call(() => modelInfo({ ...this.common, name: this.repo, revision: this.revision, additionalFields: ["sha", "filePaths"] }));
    if (typeof info.sha !== "string") throw new HubError(`${this.settings.endpoint} answered no commit for ${this.repo}@${this.revision}`);
    return { commit: info.sha, files: info.filePaths, gated: info.gated !== false && info.gated !== undefined };
  }

  /** Size and blob id of each of `paths` at `commit`. */
  async describe(commit: string, paths: readonly string[]): Promise<RepoFile[]> {
    if (paths.length === 0) return [];
    const infos = await this.call(() => pathsInfo({ ...this.common, repo: this.repo, revision: commit, paths: [...paths] }));
    const byPath = new Map(infos.map((i) => [i.path, i]));
    return paths.map((path) => {
      const i = byPath.get(path);
      if (i === undefined || i.type !== "file") throw new HubError(`${this.repo}@${commit.slice(0, 7)} has no file ${path}`);
      if (i.lfs) return { path, size: i.lfs.size, etag: i.lfs.oid, hash: "sha256" as const };
      if (!i.oid) throw new HubError(`${this.settings.endpoint} gave no blob id for ${this.repo}/${path}`);
      return { path, size: i.size, etag: i.oid, hash: "git-sha1" as const };
    });
  }

  /** Where `path` of `commit` downloads from (the hub redirects LFS files to its CDN). */
  fileUrl(commit: string, path: string): string {
    return `${this.settings.endpoint}/${this.repo}/resolve/${commit}/${path.split("/").map(encodeURIComponent).join("/")}`;
  }

  /**
   * The headers of a single safetensors file or of every shard of an index, by file path in the
   * repo: two small range requests per file, no tensor data.
   */
  async safetensorsHeaders(commit: string, path: string): Promise<Map<string, SafetensorsFileHeader>> {
    const parsed = await this.call(() => parseSafetensorsMetadata({ ...this.common, repo: this.repo, revision: commit, path }));
    if (!parsed.sharded) return new Map([[path, parsed.header]]);
    const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/") + 1) : "";
    return new Map(Object.entries(parsed.headers).map(([file, header]) => [dir + file, header]));
  }

  private async call<T>(f: () => Promise<T>): Promise<T> {
    try {
      return await f();
    } catch (e) {
      if (e instanceof HubApiError && e.statusCode === 404) throw notFoundError(this.repo, this.settings);
      if (e instanceof HubApiError) throw new HubError(`${this.settings.endpoint} answered HTTP ${e.statusCode} for ${this.repo}: ${e.message}`, "try again later; the hub may be down");
      throw e;
    }
  }
}
