// ALiBi slopes as Baichuan computes them (_get_interleave in Baichuan2-13B's modeling_baichuan.py,
// the rule of Press et al.): for n a power of two, slope_i = s^(i+1) with s = 2^(-8/n); otherwise
// the slopes of the largest power of two below n, then every other slope of twice that power.
// Computed in f64 as Python does, rounded once to f32 as torch.Tensor(list) stores them.

function powerOfTwoSlopes(n: number): number[] {
  const start = 2 ** -(2 ** -(Math.log2(n) - 3));
  return Array.from({ length: n }, (_, i) => start * start ** i);
}

function interleave(n: number): number[] {
  if (Number.isInteger(Math.log2(n))) return powerOfTwoSlopes(n);
  const closest = 2 ** Math.floor(Math.log2(n));
  return [...powerOfTwoSlopes(closest), ...interleave(2 * closest).filter((_, i) => i % 2 === 0).slice(0, n - closest)];
}

/** One slope per attention head. */
export function alibiSlopes(heads: number): Float32Array {
  return Float32Array.from(interleave(heads));
}
