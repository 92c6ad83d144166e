// A Hugging Face hub on loopback, for the hub tests and the download bench: a real HTTP server
// (Bun.serve) implementing only what our client and Python's huggingface_hub (snapshot_download,
// scan_cache_dir) call — model info with siblings and sha, the file tree, paths-info, and
// `resolve` with ETag, X-Repo-Commit and the X-Linked-Size/ETag headers — with LFS files redirected
// to a second server on another port (the CDN) that honours Range. Gated repos answer 401 without a
// token and 403 with one that has no access; unknown repos and revisions 404 with the hub's
// X-Error-Code. Files are read in place (../shared is never copied). Every request is logged, and a
// download can be made to stall (to kill a client mid-file), to break off, or to arrive corrupted once.
import { closeSync, openSync, readFileSync, readSync, statSync } from "node:fs";

export interface ServedRepo {
  readonly id: string;
  /** Repo path → the local file served for it. */
  readonly files: Readonly<Record<string, string>>;
  readonly gated?: boolean;
  /** Tags that point at the repo's one commit (besides the branch "main"). */
  readonly tags?: readonly string[];
  /**
   * sha256 of LFS files given by the caller instead of computed (huge sparse files). A client that
   * downloads such a file with a wrong value here rightly rejects it.
   */
  readonly sha256?: Readonly<Record<string, string>>;
}

export interface LoggedRequest {
  readonly server: "hub" | "cdn";
  readonly method: string;
  /** URL path, decoded. */
  readonly path: string;
  readonly range: string | null;
  readonly auth: string | null;
  /** The repo and file a resolve or CDN request is for. */
  readonly repo: string | null;
  readonly file: string | null;
  readonly status: number;
}

interface FileEntry {
  readonly local: string;
  readonly size: number;
  readonly lfs: boolean;
  /** git blob oid: sha1("blob <size>\0" + content); for LFS files, of the pointer file. */
  readonly gitOid: string;
  readonly sha256: string | null;
}

interface RepoEntry {
  readonly spec: ServedRepo;
  readonly commit: string;
  readonly files: Map<string, FileEntry>;
}

/** Weight formats are stored in LFS on the hub (its default .gitattributes); the rest in git. */
const LFS = /\.(safetensors|bin|gguf|pt|pth|h5|msgpack|onnx)$/;

function hashFile(path: string, algo: "sha1" | "sha256", prefix = ""): string {
  const h = new Bun.CryptoHasher(algo);
  h.update(prefix);
  const fd = openSync(path, "r");
  const buf = new Uint8Array(4 << 20);
  try {
    for (let at = 0; ; ) {
      const n = readSync(fd, buf, 0, buf.length, at);
      if (n <= 0) break;
      h.update(buf.subarray(0, n));
      at += n;
    }
  } finally {
    closeSync(fd);
  }
  return h.digest("hex");
}

function pointerFile(sha: string, size: number): string {
  return `version https://git-lfs.github.com/spec/v1\noid sha256:${sha}\nsize ${size}\n`;
}

const gitOidOf = (text: string) => new Bun.CryptoHasher("sha1").update(`blob ${Buffer.byteLength(text)}\0${text}`).digest("hex");

function entryFor(repo: ServedRepo, path: string, local: string): FileEntry {
  const size = statSync(local).size;
  if (!LFS.test(path)) return { local, size, lfs: false, gitOid: hashFile(local, "sha1", `blob ${size}\0`), sha256: null };
  const sha256 = repo.sha256?.[path] ?? hashFile(local, "sha256");
  return { local, size, lfs: true, gitOid: gitOidOf(pointerFile(sha256, size)), sha256 };
}

const json = (body: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", ...headers } });

const hubError = (status: number, code: string, message: string) => json({ error: message }, status, { "x-error-code": code, "x-error-message": message });

/** A byte range header against a file of `size`: [start, end] inclusive, or null for the whole file. */
function parseRange(header: string | null, size: number): [number, number] | "unsatisfiable" | null {
  if (header === null) return null;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m) return null;
  let start: number;
  let end: number;
  if (m[1] === "") {
    start = Math.max(0, size - Number(m[2]));
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  }
  if (start >= size || start > end) return "unsatisfiable";
  return [start, end];
}

export class HubServer {
  readonly log: LoggedRequest[] = [];
  /** The next download of `file` sends `afterBytes` bytes, then stalls until the client goes away. */
  stall: { file: string; afterBytes: number } | null = null;
  /** The next download of `file` sends `afterBytes` bytes, then the connection breaks. */
  dropOnce: { file: string; afterBytes: number } | null = null;
  /** The next full download of each of these files arrives with one byte flipped. */
  readonly corruptOnce = new Set<string>();
  /** Answer every request for bytes with the whole file (200), as a server without Range support does. */
  ignoreRange = false;
  /** Tokens that may read gated repos; any other token is refused (403). */
  readonly grantedTokens = new Set<string>(["hf_granted_test_token"]);
  /** Called for every CDN request before it is answered (the fit-check test looks at the client's stderr then). */
  onCdnRequest: ((r: { file: string; range: string | null }) => void) | null = null;

  private readonly repos = new Map<string, RepoEntry>();
  private hub!: ReturnType<typeof Bun.serve>;
  private cdn!: ReturnType<typeof Bun.serve>;
  private readonly stalled: (() => void)[] = [];

  private constructor() {}

  static start(repos: readonly ServedRepo[]): HubServer {
    const s = new HubServer();
    for (const r of repos) s.add(r);
    s.cdn = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => s.serveCdn(req) });
    s.hub = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => s.serveHub(req) });
    return s;
  }

  /** The HF_ENDPOINT to give clients. */
  get url(): string {
    return `http://127.0.0.1:${this.hub.port}`;
  }

  add(repo: ServedRepo): void {
    const files = new Map(Object.entries(repo.files).map(([path, local]) => [path, entryFor(repo, path, local)]));
    const commit = new Bun.CryptoHasher("sha1").update(repo.id + [...files].map(([p, f]) => `${p}:${f.gitOid}`).join(",")).digest("hex");
    this.repos.set(repo.id, { spec: repo, commit, files });
  }

  commitOf(id: string): string {
    return this.repos.get(id)!.commit;
  }

  /** sha256 (LFS) or git oid of a served file: its blob name in the cache. */
  etagOf(id: string, path: string): string {
    const f = this.repos.get(id)!.files.get(path)!;
    return f.sha256 ?? f.gitOid;
  }

  stop(): void {
    for (const release of this.stalled) release();
    this.hub.stop(true);
    this.cdn.stop(true);
  }

  private record(r: LoggedRequest): void {
    this.log.push(r);
  }

  /** The repo and revision of /api/models/ORG/NAME/<kind>/REV..., or a response saying what is wrong. */
  private findRevision(req: Request, id: string, rev: string): RepoEntry | Response {
    const repo = this.repos.get(id);
    const auth = req.headers.get("authorization");
    if (repo === undefined) {
      // As the hub: an unknown (or private) repo is 401 without a token, 404 with one.
      return auth === null ? hubError(401, "RepoNotFound", "Repository not found") : hubError(404, "RepoNotFound", "Repository not found");
    }
    if (rev !== "main" && rev !== "HEAD" && rev !== repo.commit && !(repo.spec.tags ?? []).includes(rev)) {
      return hubError(404, "RevisionNotFound", `Invalid rev id: ${rev}`);
    }
    return repo;
  }

  private gatedRefusal(req: Request, repo: RepoEntry): Response | null {
    if (!repo.spec.gated) return null;
    const auth = req.headers.get("authorization");
    if (auth === null) return hubError(401, "GatedRepo", `Access to model ${repo.spec.id} is restricted. You must have access to it and be authenticated to access it. Please log in.`);
    if (!this.grantedTokens.has(auth.replace(/^Bearer /, ""))) return hubError(403, "GatedRepo", `Access to model ${repo.spec.id} is restricted and you are not in the authorized list. Visit https://huggingface.co/${repo.spec.id} to ask for access.`);
    return null;
  }

  private treeEntry(path: string, f: FileEntry) {
    return {
      type: "file",
      oid: f.gitOid,
      size: f.size,
      path,
      ...(f.lfs ? { lfs: { oid: f.sha256, size: f.size, pointerSize: Buffer.byteLength(pointerFile(f.sha256!, f.size)) } } : {}),
    };
  }

  private async serveHub(req: Request): Promise<Response> {
    const url = new URL(req.url);
    const path = decodeURIComponent(url.pathname);
    const res = await this.routeHub(req, url, path);
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    this.record({ server: "hub", method: req.method, path, range: req.headers.get("range"), auth: req.headers.get("authorization"), repo: resolve?.[1] ?? null, file: resolve?.[3] ?? null, status: res.status });
    return res;
  }

  private async routeHub(req: Request, url: URL, path: string): Promise<Response> {
    let m = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/(.+)$/.exec(path);
    if (m && req.method === "GET") {
      const repo = this.findRevision(req, m[1], m[2]);
      if (repo instanceof Response) return repo;
      const blobs = url.searchParams.get("blobs") === "true";
      return json({
        _id: repo.commit.slice(0, 24),
        id: repo.spec.id,
        modelId: repo.spec.id,
        author: repo.spec.id.split("/")[0],
        sha: repo.commit,
        private: false,
        gated: repo.spec.gated ? "manual" : false,
        disabled: false,
        downloads: 0,
        likes: 0,
        tags: [],
        lastModified: "2026-01-01T00:00:00.000Z",
        createdAt: "2026-01-01T00:00:00.000Z",
        siblings: [...repo.files].map(([p, f]) =>
          blobs ? { rfilename: p, size: f.size, blobId: f.gitOid, ...(f.lfs ? { lfs: { size: f.size, sha256: f.sha256, pointerSize: 134 } } : {}) } : { rfilename: p },
        ),
      });
    }
    m = /^\/api\/models\/([^/]+\/[^/]+)\/tree\/([^/]+)(?:\/(.*))?$/.exec(path);
    if (m && req.method === "GET") {
      const repo = this.findRevision(req, m[1], m[2]);
      if (repo instanceof Response) return repo;
      const under = m[3] ? `${m[3].replace(/\/$/, "")}/` : "";
      const recursive = url.searchParams.get("recursive") === "true" || url.searchParams.get("recursive") === "True";
      const out: unknown[] = [];
      const dirs = new Set<string>();
      for (const [p, f] of repo.files) {
        if (!p.startsWith(under)) continue;
        const rest = p.slice(under.length);
        const parts = rest.split("/");
        for (let i = 1; i < parts.length && (recursive || i === 1); i++) dirs.add(under + parts.slice(0, i).join("/"));
        if (recursive || parts.length === 1) out.push(this.treeEntry(p, f));
      }
      for (const d of [...dirs].sort()) out.unshift({ type: "directory", oid: gitOidOf(d), size: 0, path: d });
      return json(out);
    }
    m = /^\/api\/models\/([^/]+\/[^/]+)\/paths-info\/(.+)$/.exec(path);
    if (m && req.method === "POST") {
      const repo = this.findRevision(req, m[1], m[2]);
      if (repo instanceof Response) return repo;
      // @huggingface/hub posts JSON; huggingface_hub posts a form.
      const body = (req.headers.get("content-type")?.includes("json") ? await req.json() : { paths: new URLSearchParams(await req.text()).getAll("paths") }) as { paths?: unknown };
      const paths: string[] = Array.isArray(body.paths) ? body.paths : [body.paths];
      return json(paths.filter((p) => repo.files.has(p)).map((p) => this.treeEntry(p, repo.files.get(p)!)));
    }
    m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (m && (req.method === "GET" || req.method === "HEAD")) {
      const repo = this.findRevision(req, m[1], m[2]);
      if (repo instanceof Response) return repo;
      const refused = this.gatedRefusal(req, repo);
      if (refused) return refused;
      const f = repo.files.get(m[3]);
      if (f === undefined) return hubError(404, "EntryNotFound", `${m[3]} does not exist on "${m[2]}"`);
      const common = { "x-repo-commit": repo.commit, "accept-ranges": "bytes" };
      if (f.lfs) {
        return new Response(null, {
          status: 302,
          headers: {
            ...common,
            location: `http://127.0.0.1:${this.cdn.port}/lfs/${encodeURIComponent(repo.spec.id)}/${f.sha256}?file=${encodeURIComponent(m[3])}`,
            etag: `"${f.gitOid}"`,
            "x-linked-etag": `"${f.sha256}"`,
            "x-linked-size": String(f.size),
          },
        });
      }
      return this.fileResponse(req, f, { ...common, etag: `"${f.gitOid}"` }, repo.spec.id, m[3]);
    }
    return json({ error: `not implemented by the test hub: ${req.method} ${path}` }, 404);
  }

  private serveCdn(req: Request): Response {
    const url = new URL(req.url);
    const m = /^\/lfs\/([^/]+)\/([0-9a-f]{64})$/.exec(url.pathname);
    const repo = m ? this.repos.get(decodeURIComponent(m[1])) : undefined;
    const file = url.searchParams.get("file") ?? "";
    const f = repo?.files.get(file);
    const range = req.headers.get("range");
    if (!m || repo === undefined || f === undefined || f.sha256 !== m[2]) {
      this.record({ server: "cdn", method: req.method, path: url.pathname, range, auth: req.headers.get("authorization"), repo: null, file: null, status: 404 });
      return new Response("no such object", { status: 404 });
    }
    this.onCdnRequest?.({ file, range });
    const res = this.fileResponse(req, f, { etag: `"${f.sha256}"`, "accept-ranges": "bytes" }, repo.spec.id, file);
    this.record({ server: "cdn", method: req.method, path: url.pathname, range, auth: req.headers.get("authorization"), repo: repo.spec.id, file, status: res.status });
    return res;
  }

  private fileResponse(req: Request, f: FileEntry, headers: Record<string, string>, repo: string, file: string): Response {
    const range = this.ignoreRange ? null : parseRange(req.headers.get("range"), f.size);
    if (range === "unsatisfiable") return new Response(null, { status: 416, headers: { ...headers, "content-range": `bytes */${f.size}` } });
    const [start, end] = range ?? [0, f.size - 1];
    const status = range === null ? 200 : 206;
    const h: Record<string, string> = { ...headers, "content-length": String(end - start + 1), "content-type": "application/octet-stream" };
    if (range !== null) h["content-range"] = `bytes ${start}-${end}/${f.size}`;
    if (req.method === "HEAD") return new Response(null, { status, headers: h });
    const stall = this.stall;
    if (stall !== null && stall.file === file && start < stall.afterBytes && end >= stall.afterBytes) {
      this.stall = null;
      return new Response(this.stalledBody(f, start, stall.afterBytes), { status, headers: h });
    }
    const drop = this.dropOnce;
    if (drop !== null && drop.file === file && start < drop.afterBytes && end >= drop.afterBytes) {
      this.dropOnce = null;
      const head = Bun.file(f.local).slice(start, drop.afterBytes);
      return new Response(
        new ReadableStream<Uint8Array>({
          async start(controller) {
            controller.enqueue(new Uint8Array(await head.arrayBuffer()));
            controller.error(new Error("dropped by the test hub"));
          },
        }),
        { status, headers: h },
      );
    }
    if (this.corruptOnce.has(`${repo}/${file}`) && start === 0 && end === f.size - 1) {
      this.corruptOnce.delete(`${repo}/${file}`);
      const bytes = new Uint8Array(readFileSync(f.local));
      bytes[bytes.length >> 1] ^= 0xff;
      return new Response(bytes, { status, headers: h });
    }
    return new Response(Bun.file(f.local).slice(start, end + 1), { status, headers: h });
  }

  /** Bytes [start, upTo) of the file, then nothing more until the client disconnects or the server stops. */
  private stalledBody(f: FileEntry, start: number, upTo: number): ReadableStream<Uint8Array> {
    let release = () => {};
    const gone = new Promise<void>((r) => (release = r));
    this.stalled.push(release);
    return new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(new Uint8Array(await Bun.file(f.local).slice(start, upTo).arrayBuffer()));
        await gone;
        controller.error(new Error("stalled download ended"));
      },
      cancel() {
        release();
      },
    });
  }
}
