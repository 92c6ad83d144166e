// The engine's own thread. bun:ffi calls are synchronous, and the CUDA backend waits on events
// (cuEventSynchronize, a synchronous download per token): run here, those waits block only this
// Worker, never the caller's event loop. Requests run one at a time; an abort message is handled
// between tokens, because the generation loop yields to the event loop after each one.
import { AirLLMError } from "../errors.ts";
import { AutoModel } from "../model/auto-model.ts";
import type { CausalLM } from "../model/causal-lm.ts";
import type { FromWorker, ToWorker, WireError } from "./protocol.ts";

declare const self: Worker;

let model: CausalLM | null = null;
const aborts = new Map<number, AbortController>();
let queue: Promise<void> = Promise.resolve();

const send = (m: FromWorker) => self.postMessage(m);

function wire(e: unknown): WireError {
  if (e instanceof AirLLMError) return { name: e.name, message: e.message, hint: e.hint };
  return { name: "Error", message: e instanceof Error ? e.message : String(e) };
}

async function generate(id: number, prompt: Extract<ToWorker, { type: "generate" }>["prompt"], options: Extract<ToWorker, { type: "generate" }>["options"]) {
  const ac = aborts.get(id)!;
  try {
    if (!model) throw new Error("the model is not loaded");
    const it = model.stream(prompt, { ...options, signal: ac.signal });
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
        model = await AutoModel.from_pretrained(m.path, { ...m.options, onNotice: (line) => send({ type: "notice", line }) });
        send({ type: "loaded", modelType: model.config.modelType, vocabSize: model.config.vocabSize, backend: model.backend.name });
      } catch (e) {
        send({ type: "load-error", error: wire(e) });
      }
      break;
    case "generate":
      aborts.set(m.id, new AbortController());
      queue = queue.then(() => generate(m.id, m.prompt, m.options));
      break;
    case "abort":
      aborts.get(m.id)?.abort();
      break;
  }
};
