// A real `airllm serve` process (dist/airllm) on a loopback port, and the small HTTP helpers the
// server tests share: JSON posts, server-sent-event streams, /metrics values.
import type { Subprocess } from "bun";

export interface RunningServer {
  readonly url: string;
  readonly proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Everything the server wrote on stderr so far. */
  stderr(): string;
  /** Sends `signal` and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number>;
}

/** Starts `airllm serve ARGS --port 0` and waits until it says it is ready. */
export async function startServer(binary: string, args: readonly string[], env: Record<string, string> = {}): Promise<RunningServer> {
  const proc = Bun.spawn([binary, "serve", ...args, "--port", "0"], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, AIRLLM_DEBUG: "", ...env },
  });
  let text = "";
  const decoder = new TextDecoder();
  let readyResolve!: () => void;
  let readyReject!: (e: Error) => void;
  const isReady = new Promise<void>((res, rej) => {
    readyResolve = res;
    readyReject = rej;
  });
  // Read stderr to the end (a full pipe would stall the server), noting the "ready" line.
  void (async () => {
    const reader = proc.stderr.getReader();
    let seen = false;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
      if (!seen && /^airllm: ready: /m.test(text)) {
        seen = true;
        readyResolve();
      }
    }
    if (!seen) readyReject(new Error(`airllm serve exited before it was ready:\n${text}`));
  })();
  const timer = setTimeout(() => readyReject(new Error(`airllm serve not ready after 60 s:\n${text}`)), 60_000);
  try {
    await isReady;
  } finally {
    clearTimeout(timer);
  }
  const url = text.match(/listening on (http:\/\/[^\s]+)/)?.[1];
  if (!url) throw new Error(`no listening address in:\n${text}`);
  return {
    url,
    proc,
    stderr: () => text,
    async stop(signal: NodeJS.Signals = "SIGTERM") {
      proc.kill(signal);
      return await proc.exited;
    },
  };
}

export async function postJson(url: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<{ status: number; json: any }> {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: typeof body === "string" ? body : JSON.stringify(body), signal });
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = { unparsed: text };
  }
  return { status: res.status, json };
}

/** The JSON events of a server-sent-event stream, up to `data: [DONE]` (which must come). */
export async function readEvents(res: Response): Promise<any[]> {
  const text = await res.text();
  const events = text.split("\n\n").filter((e) => e.trim() !== "");
  const data = events.map((e) => {
    if (!e.startsWith("data: ")) throw new Error(`not a data event: ${JSON.stringify(e)}`);
    return e.slice(6);
  });
  if (data.at(-1) !== "[DONE]") throw new Error(`the stream did not end with [DONE]: ${JSON.stringify(data.at(-1))}`);
  return data.slice(0, -1).map((d) => JSON.parse(d));
}

/** One sample of a Prometheus text page: `name{labels}` → value. */
export async function metrics(base: string): Promise<Map<string, number>> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const at = line.lastIndexOf(" ");
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}
