// The prompt both engines prefill in the GGUF benchmarks (bench/llama_cpp_decode.py builds the
// same ids): BOS, then a fixed walk over stories260K's 512-token vocabulary.
export function benchPromptIds(n: number): number[] {
  return Array.from({ length: n }, (_, i) => (i === 0 ? 1 : 3 + ((i * 37) % 509)));
}
