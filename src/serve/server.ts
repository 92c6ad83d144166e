// The OpenAI-compatible HTTP server. The model runs on its own Worker (WorkerModel), so this
// thread only parses requests, answers /health and /metrics at once, and relays tokens; every
// request's choices go to the worker's scheduler, which batches them into shared passes.
// Bounded in what it accepts (body size, requests in flight), it cancels a request whose client
// went away, and on shutdown it stops accepting, lets in-flight requests finish for a grace
// period, then cancels the rest.
import type { GenerationChunk, GenerationResult } from "../engine/job.ts";
import type { SpeculationMode } from "../engine/speculative/drafter.ts";
import type { ModelInfo, WorkerGenerateOptions, WorkerInput, WorkerMetrics } from "../worker/protocol.ts";
import { generationError, HttpError } from "./http-error.ts";
import { ServerMetrics } from "./metrics.ts";
import { parseRequest, type ParsedRequest } from "./openai-request.ts";
import {
  chatLogprobs,
  completionBody,
  completionLogprobs,
  finishReasonOf,
  sse,
  streamChoice,
  streamChunk,
  usageOf,
  type ChoiceSlot,
  type Kind,
  type ResponseHeader,
} from "./openai-response.ts";

type Stream = AsyncGenerator<GenerationChunk, GenerationResult>;

/** What the server needs of a model: WorkerModel has this shape. */
export interface ServedModel {
  readonly info: ModelInfo;
  open(input: WorkerInput, options: WorkerGenerateOptions & { readonly signal?: AbortSignal }): Promise<Stream>;
  metrics(): Promise<WorkerMetrics>;
  dispose(): void;
}

export interface ServeOptions {
  readonly host?: string;
  /** 0 picks a free port (see `port` once started). */
  readonly port?: number;
  /** Requests must send `Authorization: Bearer KEY` (401 otherwise); null: no key. */
  readonly apiKey?: string | null;
  /** Choices that may wait beyond those running (--parallel); more get 429. Default 64. */
  readonly maxQueue?: number;
  /** Largest request body in bytes (413 beyond). Default 8 MiB. */
  readonly maxBodyBytes?: number;
  /** The id /v1/models lists and requests name. */
  readonly modelId: string;
  /** Other names a request's `model` may use (the path it was loaded from). */
  readonly modelAliases?: readonly string[];
  /** One line per request and per state change (stderr in the CLI). */
  readonly log?: (line: string) => void;
  /** Speculative decoding for requests that do not choose (`speculate` in the body). */
  readonly speculate?: SpeculationMode;
  readonly draftTokens?: number;
}

const DEFAULT_MAX_BODY = 8 * 1024 * 1024;
const encoder = new TextEncoder();

/** The body, read up to `limit` bytes: a larger one is a 413 before it is all received. */
async function readBody(req: Request, limit: number): Promise<string> {
  const declared = Number(req.headers.get("content-length") ?? NaN);
  const tooLarge = (n: number) => new HttpError(413, `the request body is ${n} bytes or more; this server accepts at most ${limit}`, "invalid_request_error", null, "request_too_large");
  if (declared > limit) throw tooLarge(declared);
  if (req.body === null) return "";
  const reader = req.body.getReader();
  const parts: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw tooLarge(size);
    }
    parts.push(value);
  }
  return new TextDecoder().decode(Buffer.concat(parts));
}

export class OpenAIServer {
  /** Resolves when the model is loaded; rejects with the load error. */
  readonly ready: Promise<void>;
  private model: ServedModel | null = null;
  private draining = false;
  private inFlight = 0;
  /** Requests between arrival and their response (a stream's body is counted by inFlight). */
  private handling = 0;
  private readonly active = new Set<AbortController>();
  private readonly metrics = new ServerMetrics();
  private readonly server: ReturnType<typeof Bun.serve>;
  private readonly names: Set<string>;
  private readonly maxBody: number;
  private readonly maxQueue: number;
  private readonly log: (line: string) => void;
  private readonly created = Math.floor(Date.now() / 1000);
  private nextId = 1;
  private idle: (() => void) | null = null;

  constructor(
    load: Promise<ServedModel>,
    private readonly o: ServeOptions,
  ) {
    this.names = new Set([o.modelId, ...(o.modelAliases ?? [])]);
    this.maxBody = o.maxBodyBytes ?? DEFAULT_MAX_BODY;
    this.maxQueue = o.maxQueue ?? 64;
    this.log = o.log ?? (() => {});
    this.server = Bun.serve({
      hostname: o.host ?? "127.0.0.1",
      port: o.port ?? 8000,
      // Bun answers oversized bodies itself, without our error shape: leave the check to readBody.
      maxRequestBodySize: this.maxBody * 2 + 1024,
      fetch: (req, server) => this.handle(req, server),
    });
    this.ready = load.then((m) => {
      if (this.draining) {
        m.dispose();
        return;
      }
      this.model = m;
    });
  }

  get port(): number {
    return this.server.port!;
  }

  get url(): string {
    return `http://${this.server.hostname}:${this.port}`;
  }

  /** Requests accepted at once: those the scheduler runs plus the bounded queue. */
  get capacity(): number {
    return (this.model?.info.parallel ?? 0) + this.maxQueue;
  }

  /** Cancels every in-flight request now (a second Ctrl-C during shutdown). */
  cancelAll(): void {
    for (const ac of this.active) ac.abort();
  }

  /**
   * Stops accepting, lets in-flight requests finish for `graceMs`, cancels what is left (their
   * clients get what was generated, ended), then closes every connection and the model.
   */
  async shutdown(graceMs: number): Promise<void> {
    if (this.draining) return;
    this.draining = true;
    void this.server.stop(false);
    const drained = () => new Promise<void>((resolve) => {
      if (this.quiet) return resolve();
      this.idle = resolve;
    });
    const timeout = (ms: number) => new Promise<"timeout">((r) => setTimeout(() => r("timeout"), ms).unref());
    if ((await Promise.race([drained(), timeout(graceMs)])) === "timeout") {
      this.log(`shutdown: grace period over, cancelling ${this.inFlight} request${this.inFlight === 1 ? "" : "s"}`);
      this.cancelAll();
      await Promise.race([drained(), timeout(5000)]);
    }
    await this.server.stop(true);
    this.model?.dispose();
    this.model = null;
  }

  private get quiet(): boolean {
    return this.inFlight === 0 && this.handling === 0;
  }

  private settled(): void {
    if (this.quiet) this.idle?.();
  }

  private async handle(req: Request, server: Bun.Server<undefined>): Promise<Response> {
    const url = new URL(req.url);
    const route = `${req.method} ${url.pathname}`;
    let status = 500;
    this.handling++;
    try {
      const res = await this.route(route, url.pathname, req, server);
      status = res.status;
      return res;
    } catch (e) {
      const err = generationError(e);
      status = err.status;
      if (status >= 500) this.log(`${route}: ${err.message}`);
      return err.response();
    } finally {
      if (url.pathname.startsWith("/v1/")) this.metrics.request(url.pathname, status);
      this.handling--;
      this.settled();
    }
  }

  private async route(route: string, path: string, req: Request, server: Bun.Server<undefined>): Promise<Response> {
    switch (route) {
      case "GET /health":
        if (this.draining) return Response.json({ status: "shutting_down" }, { status: 503 });
        return this.model ? Response.json({ status: "ok" }) : Response.json({ status: "loading" }, { status: 503 });
      case "GET /metrics": {
        const engine = this.model ? await this.model.metrics().catch(() => null) : null;
        const text = this.metrics.render(engine, { ready: this.model !== null, draining: this.draining, inFlight: this.inFlight });
        return new Response(text, { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } });
      }
    }
    if (path.startsWith("/v1/")) this.authorize(req);
    switch (route) {
      case "GET /v1/models":
        return Response.json({ object: "list", data: [{ id: this.o.modelId, object: "model", created: this.created, owned_by: "airllm" }] });
      case "POST /v1/chat/completions":
        return this.completions("chat", req, server);
      case "POST /v1/completions":
        return this.completions("completion", req, server);
    }
    const known = ["/health", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/completions"];
    if (known.includes(path)) throw new HttpError(405, `${req.method} is not allowed on ${path}`);
    throw new HttpError(404, `no route ${req.method} ${path}; this server has ${known.join(", ")}`, "invalid_request_error", null, "not_found");
  }

  private authorize(req: Request): void {
    const key = this.o.apiKey;
    if (!key) return;
    const given = req.headers.get("authorization")?.replace(/^Bearer\s+/i, "");
    if (given !== key) throw new HttpError(401, given ? "the API key is not valid" : "an API key is required: send Authorization: Bearer KEY", "invalid_request_error", null, "invalid_api_key");
  }

  private available(): ServedModel {
    if (this.draining) throw new HttpError(503, "the server is shutting down", "server_error", null, "shutting_down");
    if (this.model === null) throw new HttpError(503, "the model is still loading; GET /health answers 200 once it is ready", "server_error", null, "loading");
    return this.model;
  }

  private async completions(kind: Kind, req: Request, server: Bun.Server<undefined>): Promise<Response> {
    const model = this.available();
    const text = await readBody(req, this.maxBody);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (e) {
      throw new HttpError(400, `the body is not valid JSON: ${(e as Error).message}`, "invalid_request_error", "body");
    }
    const p = parseRequest(kind, body, model.info.context, { speculate: this.o.speculate, draftTokens: this.o.draftTokens });
    if (p.model !== null && !this.names.has(p.model)) {
      throw new HttpError(404, `the model "${p.model}" is not served here; this server serves "${this.o.modelId}"`, "invalid_request_error", "model", "model_not_found");
    }
    if (kind === "chat" && !model.info.hasChatTemplate) {
      throw new HttpError(400, "this model has no chat template", "invalid_request_error", "messages", "no_chat_template");
    }
    const slots: ChoiceSlot[] = [];
    p.inputs.forEach((_, input) => {
      for (let c = 0; c < p.n; c++) slots.push({ index: input * p.n + c, input });
    });
    if (this.inFlight + slots.length > this.capacity) {
      throw new HttpError(
        429,
        `the server is at capacity: ${this.inFlight} generations in flight, ${slots.length} more asked, at most ${this.capacity} (${model.info.parallel} running + ${this.maxQueue} queued); retry later`,
        "rate_limit_error",
        null,
        "rate_limit_exceeded",
      );
    }
    // A long prefill sends nothing for a while: no idle timeout while the request is served.
    server.timeout(req, 0);
    const ac = new AbortController();
    req.signal.addEventListener("abort", () => ac.abort(), { once: true });
    this.active.add(ac);
    this.inFlight += slots.length;
    const release = () => {
      this.active.delete(ac);
      this.inFlight -= slots.length;
      this.settled();
    };
    try {
      const streams = await this.openAll(model, p, slots, ac.signal).catch((e) => {
        throw generationError(e, kind === "chat" ? "messages" : "prompt");
      });
      const header: ResponseHeader = { id: `${kind === "chat" ? "chatcmpl" : "cmpl"}-${Date.now().toString(36)}${(this.nextId++).toString(36)}`, created: Math.floor(Date.now() / 1000), model: this.o.modelId };
      if (p.stream) return this.streamResponse(kind, header, p, slots, streams, ac, release);
      try {
        return Response.json(await this.collect(kind, header, p, slots, streams));
      } finally {
        release();
      }
    } catch (e) {
      release();
      throw e;
    }
  }

  /** One stream per choice (seeded choices get seed + their index); all or none. */
  private async openAll(model: ServedModel, p: ParsedRequest, slots: readonly ChoiceSlot[], signal: AbortSignal): Promise<Stream[]> {
    const opened = await Promise.allSettled(
      slots.map((s) => model.open(p.inputs[s.input]!, { ...p.options, ...(p.seed !== null ? { seed: p.seed + (s.index % p.n) } : {}), signal })),
    );
    const failed = opened.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed) {
      for (const r of opened) if (r.status === "fulfilled") void r.value.return(undefined as never);
      throw failed.reason;
    }
    return opened.map((r) => (r as PromiseFulfilledResult<Stream>).value);
  }

  private count(results: readonly GenerationResult[], slots: readonly ChoiceSlot[]): void {
    const u = usageOf(slots, results);
    this.metrics.tokens("prompt", u.prompt_tokens);
    this.metrics.tokens("cached", u.prompt_tokens_details.cached_tokens);
    this.metrics.tokens("completion", u.completion_tokens);
  }

  private async collect(kind: Kind, h: ResponseHeader, p: ParsedRequest, slots: readonly ChoiceSlot[], streams: Stream[]): Promise<unknown> {
    const chunks: GenerationChunk[][] = streams.map(() => []);
    const results = await Promise.all(
      streams.map(async (s, i) => {
        for (;;) {
          const r = await s.next();
          if (r.done) return r.value;
          chunks[i]!.push(r.value);
        }
      }),
    );
    this.count(results, slots);
    return completionBody(kind, h, slots, results, chunks, p.logprobs !== null);
  }

  private streamResponse(kind: Kind, h: ResponseHeader, p: ParsedRequest, slots: readonly ChoiceSlot[], streams: Stream[], ac: AbortController, release: () => void): Response {
    const results: (GenerationResult | null)[] = streams.map(() => null);
    let open = true;
    const body = new ReadableStream<Uint8Array>({
      start: (controller) => {
        const send = (data: unknown) => {
          if (open) controller.enqueue(encoder.encode(sse(data)));
        };
        const usageField = p.includeUsage ? { usage: null } : {};
        const chunk = (choices: unknown[]) => send({ ...(streamChunk(kind, h, choices) as object), ...usageField });
        const pump = async (s: Stream, i: number) => {
          const index = slots[i]!.index;
          if (kind === "chat") chunk([streamChoice(kind, index, "", null, null, true)]);
          for (;;) {
            const r = await s.next();
            if (r.done) {
              results[i] = r.value;
              return chunk([streamChoice(kind, index, "", finishReasonOf(r.value.finishReason), null)]);
            }
            const c = r.value;
            if (c.text === "" && c.logprob === undefined) continue;
            const lp = p.logprobs === null ? null : kind === "chat" ? chatLogprobs([c]) : completionLogprobs([c]);
            chunk([streamChoice(kind, index, c.text, null, lp)]);
          }
        };
        void Promise.all(streams.map(pump))
          .then(() => {
            const done = results as GenerationResult[];
            this.count(done, slots);
            if (p.includeUsage) send(streamChunk(kind, h, [], usageOf(slots, done)));
            send("[DONE]");
          })
          .catch((e) => {
            // Headers are gone: the error travels as an event, as OpenAI's streams report one.
            const err = generationError(e);
            this.log(`stream ${h.id}: ${err.message}`);
            send({ error: { message: err.message, type: err.type, param: err.param, code: err.code } });
            for (const s of streams) void s.return(undefined as never);
          })
          .finally(() => {
            release();
            if (open) {
              open = false;
              controller.close();
            }
          });
      },
      // The client went away: cancel every choice; the worker frees their pages within a pass.
      cancel: () => {
        open = false;
        ac.abort();
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream", "cache-control": "no-cache", connection: "keep-alive" } });
  }
}
