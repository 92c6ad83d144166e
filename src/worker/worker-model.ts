// A model that runs in its own Worker thread, for callers that must stay responsive (a server,
// a UI): the engine's blocking native calls and GPU waits happen on the Worker's thread, and this
// side only receives tokens as messages. Same generate/stream shape as CausalLM.
import { AirLLMError, ContextLengthError, ModelFormatError, NativeError, UsageError } from "../errors.ts";
import type { GenerationChunk, GenerationResult } from "../engine/generate.ts";
import type { GenerateCallOptions, PromptInput } from "../model/causal-lm.ts";
import type { FromPretrainedOptions } from "../model/auto-model.ts";
import type { ChatMessage } from "../tokenizer/chat-template.ts";
import type { FromWorker, ModelInfo, ToWorker, WireError, WorkerInput, WorkerMetrics } from "./protocol.ts";

function unwire(e: WireError): Error {
  const classes: Record<string, new (m: string, h?: string) => AirLLMError> = {
    ModelFormatError,
    UsageError,
    ContextLengthError,
    NativeError,
    AirLLMError,
  };
  const C = classes[e.name];
  return C ? new C(e.message, e.hint) : new Error(e.message);
}

// In the compiled executable, modules sit under /$bunfs/root/ by their path from src/ (the common
// folder of the build's entry points, main.ts and model-worker.ts: see package.json's build) and
// import.meta.url names the executable; run from source, the worker is this file's neighbour.
const WORKER_ENTRY = import.meta.url.includes("/$bunfs/") ? "/$bunfs/root/worker/model-worker.ts" : new URL("./model-worker.ts", import.meta.url).href;

interface Pending {
  push(m: FromWorker): void;
}

/** A request's messages from the worker, in order, awaited one at a time. */
class Inbox implements Pending {
  private readonly queue: FromWorker[] = [];
  private wake: (() => void) | null = null;

  push(m: FromWorker): void {
    this.queue.push(m);
    this.wake?.();
  }

  async take(): Promise<FromWorker> {
    while (this.queue.length === 0) await new Promise<void>((r) => (this.wake = r));
    this.wake = null;
    return this.queue.shift()!;
  }
}

export class WorkerModel {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private terminated = false;

  private constructor(
    private readonly worker: Worker,
    readonly info: ModelInfo,
  ) {
    worker.onmessage = (e: MessageEvent<FromWorker>) => {
      const m = e.data;
      if ("id" in m) this.pending.get(m.id)?.push(m);
    };
    // A worker that dies takes its requests with it: each one ends with the reason, none hangs.
    worker.onerror = (e) => {
      for (const [id, p] of this.pending) p.push({ type: "error", id, error: { name: "Error", message: `the model worker failed: ${e.message}` } });
    };
  }

  /** Starts a Worker and loads the model there (AutoModel.from_pretrained's options). */
  static async load(path: string, options: FromPretrainedOptions = {}): Promise<WorkerModel> {
    const { onNotice, onSplitProgress: _progress, tokenizer: _tokenizer, ...cloneable } = options;
    const worker = new Worker(WORKER_ENTRY);
    const info = await new Promise<ModelInfo>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<FromWorker>) => {
        const m = e.data;
        if (m.type === "notice") onNotice?.(m.line);
        else if (m.type === "loaded") resolve(m.info);
        else if (m.type === "load-error") reject(unwire(m.error));
      };
      worker.onerror = (e) => reject(new Error(`the model worker failed to start: ${e.message}`));
      worker.postMessage({ type: "load", path, options: cloneable } satisfies ToWorker);
    }).catch((e) => {
      worker.terminate();
      throw e;
    });
    return new WorkerModel(worker, info);
  }

  /** Streams chunks as the worker produces them; the return value is the result. */
  stream(prompt: PromptInput, options: GenerateCallOptions = {}): AsyncGenerator<GenerationChunk, GenerationResult> {
    return this.lazy({ prompt: typeof prompt === "string" ? prompt : [...prompt] }, options);
  }

  /** Streams the reply to a conversation rendered with the model's chat template. */
  chatStream(messages: readonly ChatMessage[], options: GenerateCallOptions = {}): AsyncGenerator<GenerationChunk, GenerationResult> {
    return this.lazy({ messages: messages.map((m) => ({ role: m.role, content: m.content })) }, options);
  }

  /**
   * Queues a request and resolves once the engine has accepted it, or rejects with why it cannot
   * run (a prompt longer than the context, no chat template): a server answers with the right
   * status before it starts a stream. Iterate the stream to the end or return() it (which cancels).
   */
  async open(input: WorkerInput, options: GenerateCallOptions = {}): Promise<AsyncGenerator<GenerationChunk, GenerationResult>> {
    const { id, inbox, stream } = this.start(input, options);
    const first = await inbox.take();
    if (first.type === "error") {
      // The worker has already dropped the request; the stream was never started.
      this.pending.delete(id);
      throw unwire(first.error);
    }
    return stream;
  }

  /** The scheduler's and streamer's counters, as the worker sees them now. */
  async metrics(): Promise<WorkerMetrics> {
    const id = this.nextId++;
    return new Promise<WorkerMetrics>((resolve, reject) => {
      this.pending.set(id, {
        push: (m) => {
          if (m.type === "metrics" || m.type === "error") this.pending.delete(id);
          if (m.type === "metrics") resolve(m.metrics);
          else if (m.type === "error") reject(unwire(m.error));
        },
      });
      this.worker.postMessage({ type: "metrics", id } satisfies ToWorker);
    });
  }

  private async *lazy(input: WorkerInput, options: GenerateCallOptions): AsyncGenerator<GenerationChunk, GenerationResult> {
    return yield* await this.open(input, options);
  }

  private start(input: WorkerInput, options: GenerateCallOptions): { id: number; inbox: Inbox; stream: AsyncGenerator<GenerationChunk, GenerationResult> } {
    if (this.terminated) throw new UsageError("this WorkerModel was disposed");
    const { signal, ...cloneable } = options;
    const id = this.nextId++;
    const inbox = new Inbox();
    this.pending.set(id, inbox);
    const onAbort = () => this.worker.postMessage({ type: "abort", id } satisfies ToWorker);
    signal?.addEventListener("abort", onAbort, { once: true });
    this.worker.postMessage({ type: "generate", id, input, options: cloneable } satisfies ToWorker);
    if (signal?.aborted) onAbort();
    const pending = this.pending;
    async function* stream(): AsyncGenerator<GenerationChunk, GenerationResult> {
      let ended = false;
      try {
        for (;;) {
          const m = await inbox.take();
          if (m.type === "chunk") yield m.chunk;
          else if (m.type === "done") {
            ended = true;
            return m.result;
          } else if (m.type === "error") {
            ended = true;
            throw unwire(m.error);
          }
        }
      } finally {
        signal?.removeEventListener("abort", onAbort);
        // Stopped early (break, return(), a dropped client): the worker cancels the request.
        if (!ended) onAbort();
        pending.delete(id);
      }
    }
    return { id, inbox, stream: stream() };
  }

  async generate(prompt: PromptInput, options: GenerateCallOptions = {}): Promise<GenerationResult> {
    const it = this.stream(prompt, options);
    for (;;) {
      const r = await it.next();
      if (r.done) return r.value;
    }
  }

  /** Stops the worker (and frees the model with it). Idempotent. */
  dispose(): void {
    if (this.terminated) return;
    this.terminated = true;
    this.worker.terminate();
  }
}
