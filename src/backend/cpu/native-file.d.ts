// Native libraries imported `with { type: "file" }` resolve to a path on disk (inside a
// `bun build --compile` binary, a temporary copy Bun extracts).
declare module "*.so" {
  const path: string;
  export default path;
}
