// PTX text imported `with { type: "text" }` (module.ts): Bun inlines it as a string, also in a
// `bun build --compile`d binary.
declare module "*.ptx" {
  const text: string;
  export default text;
}
