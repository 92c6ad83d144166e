// /metrics in Prometheus' text exposition format: the server's request and token counters, and
// the engine's state (queue, running sequences, KV pages, prefix cache, passes, bytes streamed).
import type { WorkerMetrics } from "../worker/protocol.ts";

type Labels = Record<string, string>;

const key = (name: string, labels: Labels) => {
  const l = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`);
  return l.length === 0 ? name : `${name}{${l.join(",")}}`;
};

/** Counters the server itself keeps (the engine's state comes from the worker). */
export class ServerMetrics {
  private readonly counters = new Map<string, { name: string; labels: Labels; value: number }>();

  add(name: string, labels: Labels, by = 1): void {
    const k = key(name, labels);
    const c = this.counters.get(k);
    if (c) c.value += by;
    else this.counters.set(k, { name, labels, value: by });
  }

  /** Requests by endpoint and status. */
  request(endpoint: string, status: number): void {
    this.add("airllm_requests_total", { endpoint, status: String(status) });
  }

  /** Tokens by kind: prompt (fed or cached), cached, completion. */
  tokens(kind: "prompt" | "cached" | "completion", n: number): void {
    this.add("airllm_tokens_total", { kind }, n);
  }

  render(engine: WorkerMetrics | null, state: { ready: boolean; draining: boolean; inFlight: number }): string {
    const lines: string[] = [];
    const family = (name: string, type: "counter" | "gauge", help: string) => lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    const value = (name: string, labels: Labels, v: number) => lines.push(`${key(name, labels)} ${Number.isFinite(v) ? v : 0}`);

    family("airllm_requests_total", "counter", "HTTP requests by endpoint and status.");
    family("airllm_tokens_total", "counter", "Tokens by kind: prompt (all prompt tokens), cached (prompt tokens whose KV came from the prefix cache), completion (generated).");
    const byName = new Map<string, { labels: Labels; value: number }[]>();
    for (const c of this.counters.values()) byName.set(c.name, [...(byName.get(c.name) ?? []), c]);
    for (const name of ["airllm_requests_total", "airllm_tokens_total"]) {
      for (const c of byName.get(name) ?? []) value(name, c.labels, c.value);
    }
    family("airllm_ready", "gauge", "1 once the model is loaded and the server is not shutting down.");
    value("airllm_ready", {}, state.ready && !state.draining ? 1 : 0);
    family("airllm_requests_in_flight", "gauge", "Generations accepted and not finished (each choice counts).");
    value("airllm_requests_in_flight", {}, state.inFlight);
    if (engine !== null) {
      const s = engine.scheduler;
      family("airllm_queue_depth", "gauge", "Requests waiting for admission.");
      value("airllm_queue_depth", {}, s.waiting);
      family("airllm_running_sequences", "gauge", "Sequences carried by each pass.");
      value("airllm_running_sequences", {}, s.running);
      family("airllm_kv_pages", "gauge", "KV cache pages by state (used includes pages the prefix cache keeps).");
      value("airllm_kv_pages", { state: "used" }, s.totalPages - s.freePages);
      value("airllm_kv_pages", { state: "free" }, s.freePages);
      value("airllm_kv_pages", { state: "prefix_cached" }, s.cachedPages);
      family("airllm_prefix_cache_hit_tokens_total", "counter", "Prompt tokens found in the prefix cache.");
      value("airllm_prefix_cache_hit_tokens_total", {}, s.prefixHitTokens);
      family("airllm_prefix_cache_lookup_tokens_total", "counter", "Prompt tokens looked up in the prefix cache.");
      value("airllm_prefix_cache_lookup_tokens_total", {}, s.prefixLookupTokens);
      family("airllm_prefix_cache_hit_rate", "gauge", "Hit tokens over looked-up tokens since start.");
      value("airllm_prefix_cache_hit_rate", {}, s.prefixLookupTokens > 0 ? s.prefixHitTokens / s.prefixLookupTokens : 0);
      family("airllm_passes_total", "counter", "Engine passes (one weight pass each).");
      value("airllm_passes_total", {}, s.passes);
      family("airllm_pass_seconds_total", "counter", "Time spent in engine passes.");
      value("airllm_pass_seconds_total", {}, s.passMs / 1000);
      family("airllm_pass_seconds_max", "gauge", "The longest engine pass since start.");
      value("airllm_pass_seconds_max", {}, s.longestPassMs / 1000);
      family("airllm_preemptions_total", "counter", "Sequences preempted for KV pages (recomputed later).");
      value("airllm_preemptions_total", {}, s.preemptions);
      family("airllm_streamed_bytes_per_pass", "gauge", "Weight bytes streamed (not resident) in each pass.");
      value("airllm_streamed_bytes_per_pass", {}, engine.streamedBytesPerPass);
      if (engine.fetched !== null) {
        family("airllm_fetched_bytes_total", "counter", "Weight bytes fetched by the layer streamer.");
        const f = engine.fetched;
        value("airllm_fetched_bytes_total", { kind: "chunks" }, f.chunkBytes);
        value("airllm_fetched_bytes_total", { kind: "experts" }, f.expertBytes);
        value("airllm_fetched_bytes_total", { kind: "embedding_rows" }, f.rowBytes);
      }
    }
    return lines.join("\n") + "\n";
  }
}
