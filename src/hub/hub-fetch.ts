// The one fetch every hub request goes through, @huggingface/hub's included (it takes a `fetch`
// parameter): the token is sent to the hub's own origin only, never to the CDN a file redirects
// to (redirects are followed here, by hand, for that reason); 401/403/404 of the repo or revision
// become one HubError that says what to do; offline, no request leaves at all.
import { accessError, HubError, notFoundError, revisionError } from "./hub-errors.ts";
import type { HubSettings } from "./hub-settings.ts";
import pkg from "../../package.json" with { type: "json" };

const MAX_REDIRECTS = 10;
const USER_AGENT = `airllm/${pkg.version}; bun/${Bun.version}`;

export function hubFetch(s: HubSettings, repo: string, revision: string): typeof fetch {
  const hubOrigin = new URL(s.endpoint).origin;
  const f = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    if (s.offline) throw new HubError(`offline (HF_HUB_OFFLINE or --offline): no request to ${s.endpoint}`, "unset HF_HUB_OFFLINE / drop --offline");
    let url = input instanceof Request ? input.url : String(input);
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    headers.set("user-agent", USER_AGENT);
    for (let hop = 0; ; hop++) {
      const onHub = new URL(url).origin === hubOrigin;
      if (onHub && s.token !== null) headers.set("authorization", `Bearer ${s.token}`);
      else headers.delete("authorization");
      let res: Response;
      try {
        res = await fetch(url, { ...init, headers, redirect: "manual" });
      } catch (e) {
        if ((e as Error).name === "AbortError") throw e;
        throw new HubError(`cannot reach ${new URL(url).origin}: ${(e as Error).message}`, `check the network (HF_ENDPOINT is ${s.endpoint}), or run offline from the cache with HF_HUB_OFFLINE=1`);
      }
      const location = res.headers.get("location");
      if (res.status >= 300 && res.status < 400 && location !== null) {
        await res.body?.cancel();
        if (hop >= MAX_REDIRECTS) throw new HubError(`more than ${MAX_REDIRECTS} redirects from ${url}`);
        url = new URL(location, url).href;
        continue;
      }
      if (onHub) {
        const code = res.headers.get("x-error-code");
        if (res.status === 401 || res.status === 403) throw accessError(repo, s, res.status, code);
        if (res.status === 404 && code === "RepoNotFound") throw notFoundError(repo, s);
        if (res.status === 404 && code === "RevisionNotFound") throw revisionError(repo, revision);
      }
      return res;
    }
  };
  return f as typeof fetch;
}
