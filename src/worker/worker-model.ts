// A model that runs in its own Worker thread, for callers that must stay responsive (a server,
// a UI): the engine's blocking native calls and GPU waits happen on the Worker's thread, and this
// side only receives tokens as messages. Same generate/stream shape as CausalLM.
import { AirLLMError, ModelFormatError, NativeError, UsageError } from "../errors.ts";
import type { GenerationChunk, GenerationResult } from "../engine/generate.ts";
import type { GenerateCallOptions, PromptInput } from "../model/causal-lm.ts";
import type { FromPretrainedOptions } from "../model/auto-model.ts";
import type { FromWorker, ToWorker, WireError } from "./protocol.ts";

function unwire(e: WireError): Error {
  const classes: Record<string, new (m: string, h?: string) => AirLLMError> = {
    ModelFormatError,
    UsageError,
    NativeError,
    AirLLMError,
  };
  const C = classes[e.name];
  return C ? new C(e.message, e.hint) : new Error(e.message);
}

interface Pending {
  push(m: FromWorker): void;
}

export class WorkerModel {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private terminated = false;

  private constructor(
    private readonly worker: Worker,
    readonly info: { modelType: string; vocabSize: number; backend: string },
  ) {
    worker.onmessage = (e: MessageEvent<FromWorker>) => {
      const m = e.data;
      if ("id" in m) this.pending.get(m.id)?.push(m);
    };
  }

  /** Starts a Worker and loads the model there (AutoModel.from_pretrained's options). */
  static async load(path: string, options: FromPretrainedOptions = {}): Promise<WorkerModel> {
    const { onNotice, ...cloneable } = options;
    const worker = new Worker(new URL("./model-worker.ts", import.meta.url).href);
    const info = await new Promise<WorkerModel["info"]>((resolve, reject) => {
      worker.onmessage = (e: MessageEvent<FromWorker>) => {
        const m = e.data;
        if (m.type === "notice") onNotice?.(m.line);
        else if (m.type === "loaded") resolve({ modelType: m.modelType, vocabSize: m.vocabSize, backend: m.backend });
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
  async *stream(prompt: PromptInput, options: GenerateCallOptions = {}): AsyncGenerator<GenerationChunk, GenerationResult> {
    if (this.terminated) throw new UsageError("this WorkerModel was disposed");
    const { signal, ...cloneable } = options;
    const id = this.nextId++;
    const inbox: FromWorker[] = [];
    let wake: (() => void) | null = null;
    this.pending.set(id, {
      push: (m) => {
        inbox.push(m);
        wake?.();
      },
    });
    const onAbort = () => this.worker.postMessage({ type: "abort", id } satisfies ToWorker);
    signal?.addEventListener("abort", onAbort, { once: true });
    this.worker.postMessage({ type: "generate", id, prompt: typeof prompt === "string" ? prompt : [...prompt], options: cloneable } satisfies ToWorker);
    if (signal?.aborted) onAbort();
    try {
      for (;;) {
        while (inbox.length === 0) await new Promise<void>((r) => (wake = r));
        wake = null;
        const m = inbox.shift()!;
        if (m.type === "chunk") yield m.chunk;
        else if (m.type === "done") return m.result;
        else if (m.type === "error") throw unwire(m.error);
      }
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.pending.delete(id);
    }
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
