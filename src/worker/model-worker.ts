// The engine's own thread. bun:ffi calls are synchronous, and the CUDA backend waits on events
// (cuEventSynchronize, a synchronous download per pass): run here, those waits block only this
// Worker, never the caller's event loop. Requests run concurrently: each one's stream shares the
// model's scheduler, so one pass serves them all; an abort message is handled between passes.
import { AirLLMError } from "../errors.ts";
import { AutoModel } from "../model/auto-model.ts";
import type { CausalLM } from "../model/causal-lm.ts";
import type { FromWorker, ToWorker, WireError, WorkerInput, WorkerGenerateOptions } from "./protocol.ts";

declare const self: Worker;

let model: CausalLM | null = null;
const aborts = new Map<number, AbortController>();

const send = (m: FromWorker) => self.postMessage(m);

function wire(e: unknown): WireError {
  if (e instanceof AirLLMError) return { name: e.name, message: e.message, hint: e.hint };
  return { name: "Error", message: e instanceof Error ? e.message : String(e) };
}

async function generate(id: number, input: WorkerInput, options: WorkerGenerateOptions) {
  const ac = aborts.get(id)!;
  try {
    if (!model) throw new Error("the model is not loaded");
    const o = { ...options, signal: ac.signal };
    // Queued at once: a prompt that cannot be served fails here, before "accepted".
    const it = "messages" in input ? model.chatStream(input.messages, o) : model.stream(input.prompt, o);
    send({ type: "accepted", id });
    for (;;) {
      const r = await it.next();
      if (r.done) {
        send({ type: "done", id, result: r.value });
        break;
      }
      send({ type: "chunk", id, chunk: r.value });
    }
  } catch (e) {
    send({ type: "error", id, error: wire(e) });
  } finally {
    aborts.delete(id);
  }
}

self.onmessage = async (event: MessageEvent<ToWorker>) => {
  const m = event.data;
  switch (m.type) {
    case "load":
      try {
        model = await AutoModel.from_pretrained(m.path, {
          ...m.options,
          onNotice: (line) => send({ type: "notice", line }),
          // A compressed split being written is long work: its progress travels as notices.
          onSplitProgress: (p) => {
            if (!p.kept) send({ type: "notice", line: `compressing ${p.done}/${p.total} ${p.name}` });
          },
        });
        send({
          type: "loaded",
          info: {
            modelType: model.config.modelType,
            vocabSize: model.config.vocabSize,
            backend: model.backend.name,
            context: model.engine.context,
            hasChatTemplate: model.chatTemplate !== null,
            parallel: model.scheduler.maxRunning,
          },
        });
      } catch (e) {
        send({ type: "load-error", error: wire(e) });
      }
      break;
    case "generate":
      aborts.set(m.id, new AbortController());
      void generate(m.id, m.input, m.options);
      break;
    case "abort":
      aborts.get(m.id)?.abort();
      break;
    case "metrics":
      if (model) {
        const w = model.engine.weightStats();
        send({ type: "metrics", id: m.id, metrics: { scheduler: model.scheduler.stats(), fetched: model.engine.fetchStats(), streamedBytesPerPass: w.streamedBytes } });
      } else {
        send({ type: "error", id: m.id, error: { name: "UsageError", message: "the model is not loaded" } });
      }
      break;
  }
};
